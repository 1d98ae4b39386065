// Fast filters: the image transformation network of Johnson, Alahi & Fei-Fei ("Perceptual Losses for
// Real-Time Style Transfer and Super-Resolution", ECCV 2016), trained once per style (train.hpp) and
// applied in one forward pass. Shape, with w = FilterArch::width (32 in the paper):
//   in    9×9 conv 3→w, instance norm, ReLU                       (full resolution)
//   down1 3×3 conv w→2w stride 2, instance norm, ReLU             (1/2)
//   down2 3×3 conv 2w→4w stride 2, instance norm, ReLU            (1/4)
//   res1…resN  two 3×3 convs 4w→4w with instance norm, ReLU between, plus the input
//   up1   nearest ×2, 3×3 conv 4w→2w, instance norm, ReLU         (1/2)
//   up2   nearest ×2, 3×3 conv 2w→w, instance norm, ReLU          (full)
//   out   9×9 conv w→3
// Every convolution pads by reflection. Upsampling is resize + convolution, not a transposed
// convolution, whose uneven overlap leaves checkerboard artefacts (Odena et al., Distill 2016).
// The network sees the image scaled to [-1, 1] and its output o is read as 127.5 + 127.5·o, so the
// weights work in unit ranges whatever the caller's 0-255 images are.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "stylize/vgg19.hpp"  // Precision

namespace stylize {

struct FilterArch {
  int width = 32;           // channels of the first convolution; the others are 2× and 4× it
  int residual_blocks = 5;
};

// Accepted ranges: width 4..256, residual_blocks 0..16. Throws UsageError naming the field.
void validate(const FilterArch& arch);

// The network's tensors in order, "in.conv.weight" [w, 3, 9, 9], "in.norm.weight" [w], ...
std::vector<std::pair<std::string, std::vector<int64_t>>> filter_parameter_shapes(const FilterArch& arch);

// Smallest image side a filter takes. The network itself runs from about 8 px (reflection padding
// needs more pixels than it pads: 4 for the 9×9 convolutions, 1 at the quarter scale); 16 leaves
// the quarter scale 4 px and refuses images too small to show anything.
constexpr int kFilterMinSide = 16;

class FilterNet {
 public:
  // Fresh weights from `seed`: PyTorch's default for convolutions (uniform ±1/√fan_in for weight and
  // bias), 1 and 0 for the norms' scale and shift. Drawn from std::mt19937_64's bits by our own
  // arithmetic (not a std:: distribution, whose algorithm each standard library chooses), so a seed
  // gives the same network with every compiler, LibTorch version and device.
  FilterNet(const FilterArch& arch, uint64_t seed);
  // Given weights, float32 on the CPU, names and shapes exactly filter_parameter_shapes(arch)
  // (load_filter checks them; a mismatch here throws WeightsError).
  FilterNet(const FilterArch& arch, const std::map<std::string, at::Tensor>& params);

  // rgb: [B, 3, H, W] float32 0-255 with H, W >= kFilterMinSide, on the network's device. Returns
  // [B, 3, H, W] float32 in 0-255 units, not clamped (training sees its overshoot; apply clamps).
  // Sides that are not multiples of 4 are reflection-padded to one and cropped back.
  at::Tensor forward(const at::Tensor& rgb) const;

  const FilterArch& arch() const { return arch_; }
  // The tensors in filter_parameter_shapes order; the trainer updates them in place.
  const std::vector<std::string>& names() const { return names_; }
  std::vector<at::Tensor>& parameters() { return params_; }
  const std::vector<at::Tensor>& parameters() const { return params_; }
  void set_requires_grad(bool on);
  void to(const at::Device& device);
  // Convolutions in `precision` (bf16 on CPUs with AMX; mixed is taken as bf16 here, the split
  // being VGG19's); the norms and the output stay fp32.
  void set_precision(Precision precision);
  Precision precision() const { return precision_; }

 private:
  const at::Tensor& param(const std::string& name) const;
  at::Tensor conv(const at::Tensor& x, const std::string& prefix, int stride) const;
  at::Tensor norm(const at::Tensor& x, const std::string& prefix) const;
  at::Tensor residual(const at::Tensor& x, const std::string& prefix) const;

  FilterArch arch_;
  std::vector<std::string> names_;
  std::vector<at::Tensor> params_;
  std::map<std::string, size_t> index_;
  Precision precision_ = Precision::fp32;
  std::vector<at::Tensor> low_;  // params_ in bf16 when precision_ is bf16 (the convolutions read these)
};

// The size a filter runs at for a `width`×`height` image: scaled so its longer side is `longest`
// (0 = as it is). Throws InputError naming `what` when a side would be under kFilterMinSide (a
// panorama at a small size), so every front-end refuses it before any work, in the same words.
std::pair<int, int> filter_size(int width, int height, int longest, const std::string& what);

// Peak memory of applying `arch` to one width×height image on the CPU, bytes: ~200 MB fixed +
// (40 + 32·arch.width) bytes per pixel (measured, peak RSS of `stylize apply` at 1-12.6 MP: 288 B/px
// at width 8, 1042 at width 32). Throws ResourceError (the sizes, what is available, `size` to
// lower) when it is over the memory available, so a large `size` is refused before any work
// rather than failing in an allocation part-way.
void check_filter_memory(const FilterArch& arch, int width, int height, const std::string& what);

// The filter's picture of `rgb` ([B, 3, H, W] float32 0-255, any device): no gradients, clamped to
// 0-255, on the CPU. Throws UsageError for a side under kFilterMinSide.
at::Tensor apply_filter(const FilterNet& net, const at::Tensor& rgb);

// What a filter file says about how it was made (its __metadata__, all strings in the file).
struct FilterInfo {
  FilterArch arch;
  std::map<std::string, std::string> training;  // "style", "style_sha256", "content_layers", "steps", ...
};

// Writes the network and `info` as safetensors (metadata "format": "stylize-filter", "version": "1",
// "width", "residual_blocks", then info.training), atomically. `extra` tensors (an optimiser's state
// in a checkpoint) are stored after the network's.
void save_filter(const std::string& path, const FilterNet& net, const FilterInfo& info,
                 const std::vector<std::pair<std::string, at::Tensor>>& extra = {});

struct LoadedFilter {
  FilterNet net;
  FilterInfo info;
  std::map<std::string, at::Tensor> extra;  // tensors under "adam." (checkpoints), float32
};

// Reads and checks a filter file like the VGG loader does: the header (safetensors.hpp), the format
// and version, width and residual_blocks, then every tensor by name and shape ("tensor 'up1.conv.weight'
// has shape [64, 3, 3, 3] in 'f.safetensors', expected [64, 128, 3, 3]"), missing, unexpected, a
// non-float dtype, NaN or infinite values: each its own WeightsError naming the file.
// `allow_extra_prefix` lets a checkpoint's optimiser tensors through ("adam.").
LoadedFilter load_filter(const std::string& path, const std::string& allow_extra_prefix = "");

}  // namespace stylize
