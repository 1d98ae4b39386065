// VGG19's convolutional feature stack (torchvision's `features`, indices 0..36), run functionally on
// frozen weights. Layers are addressed by neural-style's names: conv1_1, relu1_1, ..., pool5.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace stylize {

enum class Pooling { max, avg };

// The arithmetic of the network's convolutions, ReLUs and pooling (forward and input gradient). The
// features come out in that type; the Gram matrices (accumulated in fp32 from bf16 features), the
// losses and the optimiser are fp32 either way.
// bf16 keeps fp32's range with an 8-bit mantissa; on CPUs with AMX (Sapphire Rapids and later Xeons)
// oneDNN runs its convolutions ~3x faster than fp32 (BENCHMARKS.md). mixed: bf16 up to pool2 (conv1_1
// .. conv2_2, at full and half resolution), fp32 from conv3_1 on. On CPUs with AVX512-BF16 but no
// AMX, oneDNN's bf16 kernels beat fp32's Winograd where there are few channels and lose to it where
// there are many (from conv3_1 on an AMD EPYC Zen 4, from conv3_3 on a Zen 5; BENCHMARKS.md "`--precision mixed`").
enum class Precision { fp32, bf16, mixed };

std::string to_string(Precision p);

// How the 3×3 convolutions run. automatic: on the CPU in fp32, those with >= 64 input channels (all
// but conv1_1) by Winograd's F(4×4, 3×3) (36 multiplications per 4×4 tile instead of 144; measured
// 1.5-3.4x faster than oneDNN's direct kernels there; relative error ~1e-5 against ~1e-6), and
// conv1_1's input gradient too (its forward stays direct); everything else by oneDNN's direct
// kernels. direct: oneDNN everywhere (the reference arithmetic, and CUDA's).
enum class ConvAlgorithm { automatic, direct };

struct Vgg19Layer {
  enum class Kind { conv, relu, pool };
  std::string name;  // "conv1_1", "relu1_1", "pool1", ...
  Kind kind;
  int index;                      // torchvision's index in `features`
  int in_channels = 0, out_channels = 0;  // conv only
};

// All 37 layers in order. Conv layer i is stored as "features.<index>.weight" [out, in, 3, 3]
// and "features.<index>.bias" [out].
const std::vector<Vgg19Layer>& vgg19_layers();

// Index of a layer by name; throws UsageError listing the valid names when unknown.
int vgg19_layer_index(const std::string& name);
// The same for each of `names`, in order.
std::vector<int> vgg19_layer_indices(const std::vector<std::string>& names);

// Names of the conv parameters up to and including layer `last_index` ("features.0.weight", ...).
std::vector<std::string> vgg19_parameter_names(int last_index = 36);
std::vector<int64_t> vgg19_parameter_shape(const std::string& name);

// Smallest image side (px) that still leaves at least one pixel at layer `index`: 2^(pools before it).
int vgg19_min_side(int index);

class Vgg19 {
 public:
  // `params` maps torchvision names to float tensors; only layers up to `last_index` are kept, in
  // `precision`. Weights never require gradients.
  Vgg19(const std::map<std::string, at::Tensor>& params, Pooling pooling, int last_index = 36,
        Precision precision = Precision::fp32);

  // x: [1, 3, H, W] preprocessed input. Returns the activations at `layer_indices` (any order,
  // each <= last_index), in the order given. Runs only as deep as the deepest index asked for.
  // On CPU a bf16 layer's activations come back channels-last (a layout measured faster for
  // oneDNN; see vgg19.cpp): same values and shape, other strides, so use reshape rather than view on them.
  // Each activation is in its layer's type (layer_type: for mixed, bf16 up to pool2 and fp32 NCHW
  // after): bf16 features go to the Gram products as they are, and the content loss casts its own.
  std::vector<at::Tensor> forward(const at::Tensor& x, const std::vector<int>& layer_indices) const;

  void to(const at::Device& device);
  // ConvAlgorithm::automatic unless set; set before the first forward (tests and the bench compare).
  void set_conv_algorithm(ConvAlgorithm algorithm);
  int last_index() const { return last_index_; }
  Pooling pooling() const { return pooling_; }
  Precision precision() const { return precision_; }
  // The type layer `index` computes in: the precision's, or for mixed bf16 before kMixedFp32From.
  at::ScalarType layer_type(int index) const;
  // mixed: the first layer in fp32, conv3_1 (after pool2, where the activations are a sixteenth of
  // the input's pixels: at 512 px on a Zen 4 the cast is lost in conv3_1's noise, and pool2's backward
  // takes 1.4 ms longer, its gradient arriving NCHW).
  static constexpr int kMixedFp32From = 10;

 private:
  // Whether x's convolution runs on the engine's own kernels: Winograd from kWinogradForwardFrom
  // input channels, the direct kernels for fewer (conv1_1), forward and input gradient (vgg19.cpp).
  bool uses_own_kernels(const at::Tensor& x) const;
  static constexpr int kWinogradForwardFrom = 64;
  const at::Tensor& winograd_weights_for(int index) const;

  std::map<int, std::pair<at::Tensor, at::Tensor>> conv_;  // index -> (weight, bias)
  ConvAlgorithm algorithm_ = ConvAlgorithm::automatic;
  mutable std::map<int, at::Tensor> winograd_;  // index -> [36, out, in] transformed kernels, on first use
  std::unique_ptr<std::mutex> winograd_mutex_ = std::make_unique<std::mutex>();  // the map is filled from const forward()
  Pooling pooling_;
  int last_index_;
  Precision precision_;
};

}  // namespace stylize
