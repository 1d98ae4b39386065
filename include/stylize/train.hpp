// Training a fast filter (filter.hpp) for one style with the Gatys losses (losses.hpp) on VGG19:
// for each step, a batch of random crops of photos goes through the filter, and the filter's
// weights move (Adam) to lower content loss against the crop itself, style loss against the style
// image's Gram matrices and TV loss of its output. The loop knows nothing of files: photos come from
// a PhotoSource, checkpoints and previews go out through callbacks.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "stylize/filter.hpp"
#include "stylize/losses.hpp"
#include "stylize/preprocess.hpp"
#include "stylize/vgg19.hpp"

namespace stylize {

struct TrainRequest {
  LossWeights loss;             // train_defaults(): shallow layers that the conv1-3 weights hold
  FilterArch arch;
  int crop_size = 256;          // px, square random crops
  int batch_size = 4;
  int steps = 2000;             // Adam steps in all (a resumed run counts from its checkpoint)
  double learning_rate = 1e-3;
  uint64_t seed = 0;            // the network's initial weights and every batch's crops
  int style_size = 512;         // longest side of the style image's working copy
};

// The one home of the training defaults: the layers of the Gatys recipe that works on the shallow
// real weights (content relu3_2; style relu1_1, relu2_1, relu3_1), content weight 5, TV 1e-3 as a
// Gatys run has them, and style weight 6: a filter cannot reach a Gatys optimum per photo, and at
// the Gatys run's 100 (or 20) the style term swamps the content for good — after 120 steps on the
// real weights the output was Starry-Night blobs with no photo left; at 6, 60 steps already showed
// the photo in the painting's colours; at 2, a faint tint (README "Fast filters").
// Johnson's own layers (content relu2_2; style relu1_2, relu2_2, relu3_3) at content 1 / style 50
// also swamped the content in 150 steps.
TrainRequest train_defaults();

// Ranges: crop_size 32..2048 (a multiple of 4), batch_size 1..64, steps 1..10^7, learning_rate in
// (0, 1], style_size 16..8192, the loss weights >= 0, layer names known; arch as validate(FilterArch).
// Throws UsageError naming the field.
void validate(const TrainRequest& r);

// Photos by number: count() of them, load(i) -> [1, 3, H, W] float32 RGB 0-255 on the CPU with
// min(H, W) >= crop_size (the caller resizes). Called a batch_size times per step.
struct PhotoSource {
  size_t count = 0;
  std::function<at::Tensor(size_t index)> load;
};

struct TrainStepResult {
  int step = 0;         // 1-based, counted over resumes
  LossValues loss;      // of this step's batch, per image (the batch's mean)
  double seconds = 0;   // this step's compute time
};

// Everything a resumed run needs besides the photos and the request: the network, Adam's moments
// and the step. The filter trains in fp32 (its bf16 copies carry no gradient); only the loss
// network's arithmetic follows the Vgg19's precision. Saved as a filter file whose extra tensors are "adam.m.<name>" / "adam.v.<name>".
class FilterTrainer {
 public:
  // `vgg` must reach deepest_layer(r.loss); `style_rgb` is [1, 3, h, w] 0-255 at its working size
  // (the caller resizes to style_size). The style targets are computed here, once.
  FilterTrainer(std::shared_ptr<const Vgg19> vgg, Preprocessing preprocessing, const TrainRequest& r,
                const at::Tensor& style_rgb, const at::Device& device);

  // One Adam step on the batch for step() + 1. Throws UsageError when photos.count is 0.
  TrainStepResult step(const PhotoSource& photos);

  // The crops step `step` (1-based) trains on, [B, 3, crop, crop] on the CPU: a function of the seed
  // and the step alone, so a resumed run sees the batches an uninterrupted one would.
  at::Tensor batch(const PhotoSource& photos, int step) const;

  // The loss terms of `rgb` ([B, 3, H, W] 0-255, the photos) through the filter, without gradients.
  LossValues evaluate(const at::Tensor& rgb) const;

  int steps_done() const { return step_; }
  int64_t images_seen() const { return int64_t{step_} * request_.batch_size; }
  const FilterNet& net() const { return net_; }
  const TrainRequest& request() const { return request_; }

  // Adam's state, named for the checkpoint file.
  std::vector<std::pair<std::string, at::Tensor>> optimiser_state() const;
  // Continues a checkpoint: its network, its moments (`extra` as load_filter returned them) and its
  // step. Throws WeightsError naming the tensor when a moment is missing or mis-shaped.
  void resume(const FilterNet& net, const std::map<std::string, at::Tensor>& extra, int step);

 private:
  LossTerms losses(const at::Tensor& rgb, const at::Tensor& out) const;

  std::shared_ptr<const Vgg19> vgg_;
  Preprocessing preprocessing_;
  TrainRequest request_;
  at::Device device_;
  FilterNet net_;
  StyleTargets style_;
  std::vector<int> content_idx_, style_idx_;
  std::vector<double> style_layer_weights_;
  std::vector<at::Tensor> m_, v_;  // Adam's first and second moments, one per parameter
  int step_ = 0;
};

}  // namespace stylize
