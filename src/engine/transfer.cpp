#include "stylize/transfer.hpp"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <c10/core/GradMode.h>
#include <torch/optim/adam.h>
#include <torch/optim/lbfgs.h>

#include <chrono>
#include <cmath>

#include "stylize/error.hpp"
#include "stylize/lbfgs.hpp"

namespace stylize {
namespace {

// Thrown from inside the L-BFGS closure to leave torch's step() early; never escapes this file.
struct StopRequested {};

using Clock = std::chrono::steady_clock;

}  // namespace

TransferResult optimize_image(const StyleLoss& loss, const at::Tensor& init, const OptimizerOptions& opts,
                              const TransferCallbacks& cb, const InputRange& range, const at::Tensor& update_mask) {
  if (opts.iterations < 0) throw UsageError(field("iterations") + " must be >= 0");
  TransferResult result;
  const bool bounded = range.defined() && keeps_in_range(opts);
  at::Tensor x = init.detach().clone();
  if (bounded) x.clamp_(range.lower, range.upper);
  x.set_requires_grad(true);
  at::Tensor best = x.detach().clone();
  // The best loss stays on the device: choosing the best image is arithmetic, not a host read.
  at::Tensor best_loss;
  const auto start = Clock::now();
  int evals = 0;

  // One loss evaluation with gradient; keeps the best image seen and drives the callbacks. Reads
  // the loss back only at evaluation 1 and where the caller asks for progress.
  auto evaluate = [&]() -> at::Tensor {
    if (cb.should_stop && cb.should_stop()) throw StopRequested{};
    if (x.grad().defined()) x.mutable_grad().zero_();
    const auto t0 = Clock::now();
    LossTerms terms = loss.evaluate(x);
    const auto t1 = Clock::now();
    terms.total.backward();
    // Pixels outside the mask are context: with no gradient there, every step leaves them as they are.
    if (update_mask.defined()) x.mutable_grad().mul_(update_mask);
    result.seconds_forward += std::chrono::duration<double>(t1 - t0).count();
    result.seconds_backward += std::chrono::duration<double>(Clock::now() - t1).count();
    ++evals;
    const at::Tensor total = terms.total.detach();
    if (evals == 1) {
      result.initial = to_values(terms);
      if (!std::isfinite(result.initial.total)) {
        throw Error(ExitCode::internal, "the loss is not finite at the start (" +
                                            std::to_string(result.initial.total) +
                                            "); check the weights and the loss weights");
      }
      best_loss = total.clone();
    } else {
      c10::NoGradGuard no_grad;
      RECORD_FUNCTION("stylize::keep_best", std::vector<c10::IValue>());  // named in profiles
      const at::Tensor better = total < best_loss;  // false for NaN: a NaN step never becomes the best
      best.copy_(at::where(better, x.detach(), best));
      best_loss = at::where(better, total, best_loss);
    }
    if (cb.on_progress && (!cb.progress_at || cb.progress_at(evals, opts.iterations))) {
      Progress p;
      p.iteration = evals;
      p.total = opts.iterations;
      // The lowest so far, not this evaluation's: a step the line search retries (or, with none, an
      // overshoot) is no result, and a log that jumps up reads as divergence.
      p.loss = evals == 1 ? result.initial.total : best_loss.item<double>();
      p.seconds = std::chrono::duration<double>(Clock::now() - start).count();
      cb.on_progress(p);
    }
    if (cb.snapshot_every > 0 && cb.on_snapshot && evals % cb.snapshot_every == 0 && evals < opts.iterations) {
      cb.on_snapshot(evals, x.detach());
    }
    return terms.total;
  };

  try {
    if (opts.iterations > 0) {
      if (opts.kind == OptimizerKind::lbfgs && opts.line_search != LineSearch::strong_wolfe) {
        SyncFreeLbfgs optimizer(x, opts.lbfgs_history, opts.iterations, opts.learning_rate,
                                opts.line_search == LineSearch::backtracking);
        if (bounded) optimizer.project_into(range.lower, range.upper);
        for (int i = 0; i < opts.iterations; ++i) {
          const at::Tensor total = evaluate();
          optimizer.step(x.grad(), total);
          result.iterations = i + 1;
        }
      } else if (opts.kind == OptimizerKind::lbfgs) {
        // A line search decides on the host by nature: torch's L-BFGS, with its reads.
        torch::optim::LBFGSOptions o(opts.learning_rate);
        o.max_iter(opts.iterations);
        o.tolerance_grad(-1).tolerance_change(-1);  // the full iteration count, as neural-style
        o.max_eval(opts.iterations * 25);
        o.history_size(opts.lbfgs_history);
        o.line_search_fn("strong_wolfe");
        torch::optim::LBFGS optimizer({x}, o);
        // torch keeps n_iter in private state; the extra evaluations are reported separately.
        optimizer.step(evaluate);
        result.iterations = opts.iterations;
      } else {
        torch::optim::Adam optimizer({x}, torch::optim::AdamOptions(opts.learning_rate));
        for (int i = 0; i < opts.iterations; ++i) {
          evaluate();
          optimizer.step();
          if (bounded) {
            c10::NoGradGuard no_grad;
            x.clamp_(range.lower, range.upper);
          }
          result.iterations = i + 1;
        }
      }
    }
  } catch (const StopRequested&) {
    result.interrupted = true;
    result.iterations = evals;  // each completed evaluation was one step's start
  } catch (const c10::Error&) {
    // Which LibTorch errors are out of memory is error_report's call; each front-end says what to change.
    if (error_report(std::current_exception()).code == ExitCode::resources) {
      throw ResourceError("out of memory while optimising");
    }
    throw;
  }
  result.evaluations = evals;
  result.seconds_loop = std::chrono::duration<double>(Clock::now() - start).count();

  // The final step's result has not been evaluated yet; one forward pass tells whether it beats
  // the best evaluated image (L-BFGS can overshoot on its last step).
  {
    c10::NoGradGuard no_grad;
    at::Tensor candidate = x.detach();
    LossValues final_values = to_values(loss.evaluate(candidate));
    if (evals == 0 || (!result.interrupted && std::isfinite(final_values.total) &&
                       final_values.total <= best_loss.item<double>())) {
      best = candidate.clone();
      result.final = final_values;
      if (evals == 0) result.initial = final_values;
    } else {
      result.final = to_values(loss.evaluate(best));
    }
  }
  result.input = best;
  return result;
}

}  // namespace stylize
