#include "stylize/lbfgs.hpp"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <vector>

#include "lbfgs_passes.hpp"
#include "stylize/error.hpp"

namespace stylize {
namespace {

// A rise this small (relative) is not an overshoot: a bf16 network's rounding alone moves the loss
// by ~1e-4 between nearly equal images, and rejecting that would shrink steps that are fine. The
// overshoots backtracking is for multiply the loss (x2 .. x100 measured on real weights).
constexpr double kRiseTolerance = 1e-3;

// torch's first step: lr · min(1, 1/|g|₁), as a device scalar.
at::Tensor first_step_length(const at::Tensor& g, double learning_rate) {
  return g.abs().sum().reciprocal().clamp_max(1.0).mul(learning_rate);
}

}  // namespace

SyncFreeLbfgs::SyncFreeLbfgs(const at::Tensor& param, int history, int iterations, double learning_rate, bool backtrack)
    : learning_rate_(learning_rate), backtrack_(backtrack), slots_(std::max(1, std::min(history, iterations))) {
  if (!param.is_contiguous()) throw Error(ExitCode::internal, "L-BFGS: the parameter must be contiguous");
  if (history < 1) throw UsageError(field("lbfgs_history") + " must be >= 1, got " + std::to_string(history));
  x_ = param.detach().view({-1});
  const int64_t n = x_.numel();
  s_ = at::empty({slots_, n}, x_.options());
  y_ = at::empty({slots_, n}, x_.options());
  rho_ = at::zeros({slots_}, x_.options());
  h_diag_ = at::ones({}, x_.options());
  prev_grad_ = at::empty_like(x_);
  direction_ = at::empty_like(x_);
}

void SyncFreeLbfgs::project_into(const at::Tensor& lower, const at::Tensor& upper) {
  const int64_t c = lower.numel();
  if (upper.numel() != c || x_.numel() % c != 0) throw Error(ExitCode::internal, "L-BFGS: bounds do not fit the parameter");
  lower_ = lower.reshape({c, 1}).to(x_.options());
  upper_ = upper.reshape({c, 1}).to(x_.options());
}

void SyncFreeLbfgs::step(const at::Tensor& grad, const at::Tensor& loss) {
  RECORD_FUNCTION("stylize::lbfgs_step", std::vector<c10::IValue>());  // named in profiles
  c10::NoGradGuard no_grad;
  const at::Tensor g = grad.detach().reshape({-1});
  at::Tensor accept;  // 0-dim bool (backtracking): the point just evaluated becomes the base
  at::Tensor retry;   // backtracking: the step from the base tried next if it does not
  at::Tensor f;       // backtracking: the loss here, 0-dim in x's dtype
  if (backtrack_) {
    f = loss.detach().to(x_.options()).reshape({});
    if (steps_ == 0) {
      base_ = x_.clone();
      base_loss_ = f.clone();
      lowest_loss_ = f.clone();
      scale_ = at::ones({}, x_.options());
      fraction_ = at::ones({}, x_.options());
    } else {
      // Not finite, or more than kRiseTolerance above the lowest loss so far: rejected. The next
      // trial goes back along the same step to the minimiser of the parabola through f(base), the
      // slope g_base·s and f(trial), kept within [0.1, 0.5] of it (0.1 where the fit is not finite).
      const at::Tensor s_prev = s_[(steps_ - 1) % slots_];
      const at::Tensor slope = at::dot(prev_grad_, s_prev);
      const at::Tensor fit = slope.neg() / (2 * (f - base_loss_ - slope));
      const at::Tensor shrink = at::where(at::isfinite(fit), fit.clamp(0.1, 0.5), at::full({}, 0.1, fit.options()));
      retry = s_prev * shrink;
      accept = f <= lowest_loss_ + kRiseTolerance * lowest_loss_.abs();
      // The next fresh step: L-BFGS's, times twice the fraction of its own the accepted trial
      // needed (up to 1). Where L-BFGS's steps keep overshooting, they are cut before being tried.
      scale_ = at::where(accept, (2 * fraction_).clamp_max(1.0), scale_);
      fraction_ = at::where(accept, scale_, fraction_ * shrink);
      lowest_loss_ = at::where(f < lowest_loss_, f, lowest_loss_);
    }
  }
  if (steps_ > 0) {
    // The pair of the previous step: its s was written when the step was taken, from the base.
    // A rejected trial's pair is kept too: it is a true secant pair, and the curvature it saw
    // along s is what the next fresh step must know not to overshoot again.
    const int newest = static_cast<int>((steps_ - 1) % slots_);
    at::Tensor y = y_[newest];
    at::sub_out(y, g, prev_grad_);
    const at::Tensor ys = at::dot(y, s_[newest]);
    const at::Tensor keep = ys > 1e-10;
    // ρ = 0 makes the pair a no-op only while y is finite (0 · NaN is NaN): a rejected trial's
    // gradient may not be, so a pair that is not kept has its y zeroed too.
    y.masked_fill_(keep.logical_not(), 0);
    rho_[newest].copy_(at::where(keep, ys.reciprocal(), at::zeros_like(ys)));
    h_diag_ = at::where(keep, ys / at::dot(y, y), h_diag_);
  }
  if (accept.defined()) {
    base_.copy_(at::where(accept, x_, base_));
    base_loss_ = at::where(accept, f, base_loss_);
    prev_grad_.copy_(at::where(accept, g, prev_grad_));
  } else {
    prev_grad_.copy_(g);
  }
  // prev_grad_ is now the gradient at the point the next step starts from.
  at::Tensor s = s_[steps_ % slots_];
  const at::Tensor& from = backtrack_ ? base_ : x_;
  fresh_step(s, from);
  if (accept.defined()) s.copy_(at::where(accept, s, retry));
  if (backtrack_) {
    at::add_out(x_, base_, s);
  } else {
    x_.add_(s);
  }
  ++steps_;
}

void SyncFreeLbfgs::fresh_step(at::Tensor& s, const at::Tensor& from) {
  const at::Tensor& g = prev_grad_;
  auto project = [&](at::Tensor& step) {  // step = clamp(from + step) - from
    if (!lower_.defined()) return;
    step.add_(from);
    step.view({lower_.size(0), -1}).clamp_(lower_, upper_);
    step.sub_(from);
  };
  if (steps_ == 0) {
    at::mul_out(s, g, first_step_length(g, learning_rate_).neg());
    project(s);
    return;
  }
  two_loop(g, static_cast<int>((steps_ - 1) % slots_));
  const at::Tensor length = scale_.defined() ? scale_ * learning_rate_ : at::full({}, learning_rate_, g.options());
  at::mul_out(s, direction_, length);
  project(s);
  // Rounding can make the step uphill, and so can the bounds (a pixel held at one loses the part of
  // the step that paid for the others). Then steepest descent, scaled by H₀ as L-BFGS scales its
  // first guess. (torch's L-BFGS would stop; and torch's first step length, lr / |g|₁, moves a
  // 512 px image by millionths of a grey level, mostly rounded away in fp32: it would change nothing.)
  const at::Tensor descent = at::dot(g, s) < 0;
  at::Tensor safe = g * (h_diag_ * length).neg();
  project(safe);
  s.copy_(at::where(descent, s, safe));
}

void SyncFreeLbfgs::two_loop(const at::Tensor& g, int newest) {
  // Two-loop recursion over the stored pairs, newest first, then back.
  const int filled = static_cast<int>(std::min<long>(steps_, slots_));
  if (fused_passes_ && x_.is_cpu() && x_.scalar_type() == at::kFloat) {
    two_loop_fused(g, newest, filled);
    return;
  }
  auto slot = [&](int age) { return slot_of(newest, age); };
  at::Tensor& q = direction_;
  at::neg_out(q, g);
  std::vector<at::Tensor> alpha(static_cast<size_t>(filled));
  for (int age = 0; age < filled; ++age) {
    const int i = slot(age);
    alpha[static_cast<size_t>(age)] = at::dot(s_[i], q) * rho_[i];
    q.addcmul_(y_[i], alpha[static_cast<size_t>(age)], -1);
  }
  q.mul_(h_diag_);
  for (int age = filled - 1; age >= 0; --age) {
    const int i = slot(age);
    const at::Tensor beta = at::dot(y_[i], q) * rho_[i];
    q.addcmul_(s_[i], alpha[static_cast<size_t>(age)] - beta);
  }
}

// The same recursion in 2·filled + 1 passes (lbfgs_passes.hpp), each update fused with the next dot
// product, the scalars read on the host (free on the CPU). With a full history of 100 pairs a 512 px
// step took 60 ms by ATen's ops (a one-thread BLAS dot and an addcmul per vector per loop) and takes
// 17-21 ms this way, where reading the pairs twice at the copy rate takes 12-13 (bench/lbfgs_step.py,
// Zen 5, 2 threads).
void SyncFreeLbfgs::two_loop_fused(const at::Tensor& g, int newest, int filled) {
  auto slot = [&](int age) { return slot_of(newest, age); };
  // Raw pointers: every buffer is allocated contiguous here, and g is prev_grad_.
  if (!g.is_contiguous() || !direction_.is_contiguous()) {
    throw Error(ExitCode::internal, "L-BFGS: the fused passes need contiguous vectors");
  }
  const int64_t n = g.numel();
  float* q = direction_.data_ptr<float>();
  const float* rho = rho_.data_ptr<float>();
  const float h = *h_diag_.data_ptr<float>();  // not item(): no scalar read (the step stays free of them)
  auto s = [&](int age) { return s_.data_ptr<float>() + slot(age) * n; };
  auto y = [&](int age) { return y_.data_ptr<float>() + slot(age) * n; };
  std::vector<double> alpha(static_cast<size_t>(filled));
  double dot = two_loop_pass(q, g.data_ptr<float>(), -1.f, nullptr, 0.f, 1.f, s(0), n);  // q = −g; s·q
  for (int age = 0; age < filled; ++age) {
    const double a = rho[slot(age)] * dot;
    alpha[static_cast<size_t>(age)] = a;
    const bool oldest = age + 1 == filled;
    // q −= α·y (after the oldest pair also q ·= H₀); then the next pair's s·q, or after the oldest
    // the second loop's first y·q.
    dot = two_loop_pass(q, nullptr, 1.f, y(age), static_cast<float>(-a), oldest ? h : 1.f,
                        oldest ? y(age) : s(age + 1), n);
  }
  for (int age = filled - 1; age >= 0; --age) {
    const double beta = rho[slot(age)] * dot;
    dot = two_loop_pass(q, nullptr, 1.f, s(age), static_cast<float>(alpha[static_cast<size_t>(age)] - beta), 1.f,
                        age > 0 ? y(age - 1) : nullptr, n);
  }
}

}  // namespace stylize
