#include "stylize/lbfgs.hpp"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <vector>

#include "stylize/error.hpp"

namespace stylize {
namespace {

// torch's first step: lr · min(1, 1/|g|₁), as a device scalar.
at::Tensor first_step_length(const at::Tensor& g, double learning_rate) {
  return g.abs().sum().reciprocal().clamp_max(1.0).mul(learning_rate);
}

}  // namespace

SyncFreeLbfgs::SyncFreeLbfgs(const at::Tensor& param, int history, int iterations, double learning_rate)
    : learning_rate_(learning_rate), slots_(std::max(1, std::min(history, iterations))) {
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

void SyncFreeLbfgs::step(const at::Tensor& grad) {
  RECORD_FUNCTION("stylize::lbfgs_step", std::vector<c10::IValue>());  // named in profiles
  c10::NoGradGuard no_grad;
  const at::Tensor g = grad.detach().reshape({-1});
  at::Tensor t;
  if (steps_ == 0) {
    at::neg_out(direction_, g);
    t = first_step_length(g, learning_rate_);
  } else {
    // The pair of the previous step: its s was written when the step was taken.
    const int newest = static_cast<int>((steps_ - 1) % slots_);
    at::Tensor y = y_[newest];
    at::sub_out(y, g, prev_grad_);
    const at::Tensor ys = at::dot(y, s_[newest]);
    const at::Tensor accept = ys > 1e-10;
    rho_[newest].copy_(at::where(accept, ys.reciprocal(), at::zeros_like(ys)));
    h_diag_ = at::where(accept, ys / at::dot(y, y), h_diag_);

    // Two-loop recursion over the stored pairs, newest first, then back.
    const int filled = static_cast<int>(std::min<long>(steps_, slots_));
    auto slot = [&](int age) { return (newest - age + slots_) % slots_; };
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

    // Rounding can still make d uphill; take the first iteration's safe step rather than stop.
    const at::Tensor descent = at::dot(g, direction_) < 0;
    direction_ = at::where(descent, direction_, g.neg());
    t = at::where(descent, at::full({}, learning_rate_, g.options()), first_step_length(g, learning_rate_));
  }
  prev_grad_.copy_(g);
  at::Tensor s = s_[steps_ % slots_];
  at::mul_out(s, direction_, t);
  if (lower_.defined()) {  // s = clamp(x + s) - x
    s.add_(x_);
    s.view({lower_.size(0), -1}).clamp_(lower_, upper_);
    s.sub_(x_);
  }
  x_.add_(s);
  ++steps_;
}

}  // namespace stylize
