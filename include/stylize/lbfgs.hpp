// L-BFGS without line search that never reads a value back to the host.
//
// torch::optim::LBFGS decides on the host: it reads each curvature pair's y·s to choose whether to
// keep it, each two-loop coefficient to scale an axpy, and its tolerances every iteration. On
// CUDA each read waits for the GPU to drain its queue, about 2 × history waits per iteration. Here
// every such number stays a 0-dim tensor on the device and every decision is arithmetic:
//  - a pair with y·s <= 1e-10 is stored with ρ = 0, which makes it a no-op in both loops (its α
//    and β are 0), instead of being left out; it still takes a history slot;
//  - a direction that is not a descent direction (g·d >= 0, or NaN) is replaced by the first
//    iteration's scaled steepest descent, where torch's L-BFGS would stop the run;
//  - there are no convergence tolerances: like neural-style, a run does its full iteration count.
// Otherwise the step is torch's (and neural-style's) with line_search none: first step
// lr · min(1, 1/|g|₁) · (−g), then lr · d with d from the two-loop recursion and H₀ = y·s / y·y.
#pragma once

#include <ATen/core/Tensor.h>

namespace stylize {

class SyncFreeLbfgs {
 public:
  // `param` is the tensor being optimised (contiguous; modified in place). History buffers for
  // min(history, iterations) pairs are allocated now, on param's device, in its dtype.
  SyncFreeLbfgs(const at::Tensor& param, int history, int iterations, double learning_rate);

  // Moves param by one step, given the gradient at its current value.
  void step(const at::Tensor& grad);

  // From now on each step ends inside [lower, upper] (per channel, [1, C, 1, 1] for a [1, C, H, W]
  // param): the point is clamped, and the stored s is the step actually taken, so each pair stays
  // a true secant pair of the path.
  void project_into(const at::Tensor& lower, const at::Tensor& upper);

 private:
  at::Tensor x_;          // flat view of the parameter
  at::Tensor s_, y_;      // [slots, n]: steps and gradient differences, a ring
  at::Tensor rho_;        // [slots]: 1 / y·s, or 0 for a pair that failed the curvature test
  at::Tensor h_diag_;     // 0-dim: the initial inverse-Hessian scale
  at::Tensor prev_grad_;  // [n]
  at::Tensor direction_;  // [n]
  at::Tensor lower_, upper_;  // [C, 1] bounds for the [C, n / C] view of x, or undefined
  double learning_rate_;
  int slots_;
  long steps_ = 0;        // steps taken; the pair of step k (1-based) lives in slot (k - 1) % slots
};

}  // namespace stylize
