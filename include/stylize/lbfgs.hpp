// L-BFGS that never reads a value back to the host, with or without a backtracking safeguard.
//
// torch::optim::LBFGS decides on the host: it reads each curvature pair's y·s to choose whether to
// keep it, each two-loop coefficient to scale an axpy, and its tolerances every iteration. On
// CUDA each read waits for the GPU to drain its queue, about 2 × history waits per iteration. Here
// every such number stays a 0-dim tensor on the device and every decision is arithmetic:
//  - a pair with y·s <= 1e-10 is stored with ρ = 0, which makes it a no-op in both loops (its α
//    and β are 0), instead of being left out; it still takes a history slot;
//  - a step that is not downhill (g·s >= 0, or NaN; s as projected into the bounds) is replaced by
//    steepest descent scaled by H₀ (projected too), where torch's L-BFGS would stop the run;
//  - there are no convergence tolerances: like neural-style, a run does its full iteration count.
// Without backtracking the steps are otherwise torch's (and neural-style's) with no line search:
// first lr · min(1, 1/|g|₁) · (−g), then lr · d with d from the two-loop recursion and
// H₀ = y·s / y·y; the tests hold both to the same path.
//
// With backtracking (stylize's default) each evaluation is still one iteration, and a trial whose
// loss is more than 0.1% above the lowest so far, or not finite, is not moved from: the next trial
// is base + σ·s (base: the last accepted point), σ the minimiser of the parabola through f(base),
// g_base·s and f(trial), in [0.1, 0.5]. Its pair (s, y against the base) is stored like any other
// (kept if y·s > 1e-10). Once a shortened trial is accepted, the next fresh steps are L-BFGS's
// times twice the fraction that trial needed, doubling back up to 1 as they are accepted. While
// the loss falls this is the path above; where it rises, the path above carries on from the worse
// point, and on real weights at 512-1024 px such jumps (x100 the loss) and the wandering after
// them cost tens of iterations (BENCHMARKS.md, "L-BFGS backtracking").
#pragma once

#include <ATen/core/Tensor.h>

namespace stylize {

class SyncFreeLbfgs {
 public:
  // `param` is the tensor being optimised (contiguous; modified in place). History buffers for
  // min(history, iterations) pairs are allocated now, on param's device, in its dtype (with
  // backtracking, one more copy of param, the base, at the first step).
  SyncFreeLbfgs(const at::Tensor& param, int history, int iterations, double learning_rate, bool backtrack);

  // Moves param to the next point to evaluate, given the gradient (param's shape) and the loss
  // (0-dim, on param's device, any dtype; read only with backtracking, never back to the host) at
  // its current value.
  void step(const at::Tensor& grad, const at::Tensor& loss);

  // From now on each step ends inside [lower, upper] (per channel, [1, C, 1, 1] for a [1, C, H, W]
  // param): the point is clamped, and the stored s is the step actually taken, so each pair stays
  // a true secant pair of the path.
  void project_into(const at::Tensor& lower, const at::Tensor& upper);

  // fp32 on the CPU: the two-loop recursion in fused passes (src/engine/lbfgs_passes.hpp; the same
  // arithmetic but for the order of the dot products' sums and the scalars α, β, α − β, taken in
  // double and rounded once) unless turned off, for ATen's ops as on other devices (tests compare
  // the two).
  void set_fused_passes(bool on) { fused_passes_ = on; }

 private:
  at::Tensor x_;          // flat view of the parameter
  at::Tensor s_, y_;      // [slots, n]: steps and gradient differences, a ring
  at::Tensor rho_;        // [slots]: 1 / y·s, or 0 for a pair that failed the curvature test
  at::Tensor h_diag_;     // 0-dim: the initial inverse-Hessian scale
  at::Tensor prev_grad_;  // [n]
  at::Tensor direction_;  // [n]
  at::Tensor lower_, upper_;  // [C, 1] bounds for the [C, n / C] view of x, or undefined
  at::Tensor base_, base_loss_;  // backtracking: the last accepted point [n] and its loss (0-dim)
  at::Tensor lowest_loss_;       // backtracking: the lowest loss evaluated (0-dim)
  at::Tensor scale_;             // backtracking: the fresh steps' length, a fraction of L-BFGS's (0-dim)
  at::Tensor fraction_;          // backtracking: the current trial's length, the same way (0-dim)
  double learning_rate_;
  bool backtrack_;
  int slots_;
  long steps_ = 0;        // steps taken; the pair of step k (1-based) lives in slot (k - 1) % slots
  bool fused_passes_ = true;

  // s = L-BFGS's step from `from` (whose gradient is prev_grad_), projected into the bounds.
  void fresh_step(at::Tensor& s, const at::Tensor& from);
  // direction_ = −H g from the stored pairs, `newest` the slot of the latest.
  void two_loop(const at::Tensor& g, int newest);
  // The same on the CPU in fp32, in fused passes (lbfgs_passes.hpp); `filled` pairs stored.
  void two_loop_fused(const at::Tensor& g, int newest, int filled);
  // The ring slot of the pair `age` steps older than the one in slot `newest`.
  int slot_of(int newest, int age) const { return (newest - age + slots_) % slots_; }
};

}  // namespace stylize
