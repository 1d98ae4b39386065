// Optimising the image: L-BFGS (default) or Adam directly on the network input, reporting every
// evaluation through callbacks. Knows nothing of files, flags or terminals.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>

#include "stylize/losses.hpp"
#include "stylize/preprocess.hpp"

namespace stylize {

enum class OptimizerKind { lbfgs, adam };
// backtracking: stylize's sync-free L-BFGS, a trial that raises the loss retried shorter (lbfgs.hpp);
// none: the same without that (neural-style's steps); strong_wolfe: torch's L-BFGS, on the host.
enum class LineSearch { backtracking, none, strong_wolfe };

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::lbfgs;
  int iterations = 1000;
  double learning_rate = 1.0;  // L-BFGS step scale (neural-style: 1); Adam's lr
  int lbfgs_history = 100;
  LineSearch line_search = LineSearch::backtracking;
  // Keep every pixel inside the range an image can hold, by projecting after each step (stylize's
  // L-BFGS, line search backtracking or none, and Adam). Unbounded, the optimum sits partly outside it and the image as
  // written (clamped) scores ~30% worse than the optimiser's loss on real weights (BENCHMARKS.md).
  bool keep_in_range = true;
};

// Whether a run with these options keeps its pixels in range: a line search decides on the host from
// unprojected trial points inside torch's L-BFGS, so strong-Wolfe runs stay unbounded.
inline bool keeps_in_range(const OptimizerOptions& o) { return o.keep_in_range && o.line_search != LineSearch::strong_wolfe; }

struct Progress {
  int iteration = 0;   // 1-based count of completed loss evaluations (= iterations, except with strong_wolfe)
  int total = 0;
  double loss = 0;     // lowest total loss evaluated so far (that of the image a stop would return)
  double seconds = 0;  // since the optimisation started
};

struct TransferCallbacks {
  // Called at the evaluations `progress_at` selects (all when it is empty). Each call reads the
  // loss back from the device: on CUDA that is a host wait, and with stylize's L-BFGS or
  // Adam the only one an iteration has, so a caller that logs should choose few evaluations.
  std::function<void(const Progress&)> on_progress;
  std::function<bool(int evaluation, int total)> progress_at;
  // Every `snapshot_every` evaluations (0 = never) with the current network input.
  int snapshot_every = 0;
  std::function<void(int iteration, const at::Tensor& input)> on_snapshot;
  // Polled every evaluation; returning true stops the run, which then returns the best input so far.
  std::function<bool()> should_stop;
};

struct TransferResult {
  at::Tensor input;        // best network input found (lowest evaluated loss), detached
  int iterations = 0;      // optimiser iterations completed
  int evaluations = 0;     // loss evaluations (forward + backward passes)
  bool interrupted = false;
  double seconds_loop = 0; // the optimisation loop alone (without the closing evaluation)
  // Where the loop's time went: network forward + loss terms, the backward pass, and the rest
  // (optimiser arithmetic, best-image copy, callbacks). On CUDA these are launch times unless the
  // progress callback synchronises.
  double seconds_forward = 0, seconds_backward = 0;
  LossValues initial;      // at the starting image
  LossValues final;        // at the returned image
};

// Runs the optimisation from `init` (network input, [1, 3, H, W], on the network's device). With a
// defined `range` and opts.keep_in_range, every step is projected into it (the L-BFGS pair then holds
// the step actually taken). A defined `update_mask` ([1, 1, H, W], 1 = may change, 0 = fixed context,
// on the same device) multiplies the gradient, so only the masked pixels move. Throws ResourceError on
// out-of-memory, Error(internal) if the loss is not finite at the start.
TransferResult optimize_image(const StyleLoss& loss, const at::Tensor& init, const OptimizerOptions& opts,
                              const TransferCallbacks& callbacks = {}, const InputRange& range = {},
                              const at::Tensor& update_mask = {});

}  // namespace stylize
