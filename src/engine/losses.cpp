#include "stylize/losses.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include <dlfcn.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <utility>

#include "bf16_matmul.hpp"
#include "stylize/error.hpp"

namespace stylize {

int deepest_layer(const LossWeights& w) {
  if (w.content_layers.empty() && w.style_layers.empty()) {
    throw UsageError("no content or style layers given; name at least one in " + field("content_layers") + " or " +
                     field("style_layers") + " (e.g. relu1_1)");
  }
  if (!w.style_layer_weights.empty() && w.style_layer_weights.size() != w.style_layers.size()) {
    throw UsageError(field("style_layer_weights") + " has " + std::to_string(w.style_layer_weights.size()) +
                     " values but there are " + std::to_string(w.style_layers.size()) + " style layers");
  }
  int deepest = 0;
  for (int i : vgg19_layer_indices(w.content_layers)) deepest = std::max(deepest, i);
  for (int i : vgg19_layer_indices(w.style_layers)) deepest = std::max(deepest, i);
  return deepest;
}

int deepest_style_layer(const LossWeights& w) {
  int deepest = -1;
  for (int i : vgg19_layer_indices(w.style_layers)) deepest = std::max(deepest, i);
  return deepest;
}

namespace {

// Part `part` of `parts` near-equal parts of [0, length): (first index, count).
std::pair<int64_t, int64_t> part_of(int64_t length, int64_t part, int64_t parts) {
  const int64_t begin = length * part / parts;
  return {begin, length * (part + 1) / parts - begin};
}

// a·b with the work split over ATen's threads, by the longest of the three dimensions: rows of a,
// columns of b, or the inner one (partial products, summed). BLAS runs single-threaded in this
// program (configure_threads in stylizer.cpp), and the Gram products are long and thin (64×196608
// at relu1_1 for 512 px), so their parallelism has to come from here.
at::Tensor parallel_mm(const at::Tensor& a, const at::Tensor& b) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  const int64_t parts = at::get_num_threads();
  if (!a.is_cpu() || parts < 2 || m * n * k < (int64_t{1} << 22)) return at::mm(a, b);
  // Grad mode is per thread and OpenMP's workers start with it on: without the guard, mm_out on
  // features that require grad (the Gram's forward) refuses to run there.
  if (k >= m && k >= n) {
    at::Tensor partial = at::empty({parts, m, n}, a.options());
    at::parallel_for(0, parts, 1, [&](int64_t first, int64_t last) {
      c10::NoGradGuard no_grad;
      for (int64_t p = first; p < last; ++p) {
        const auto [begin, length] = part_of(k, p, parts);
        at::Tensor slot = partial[p];
        at::mm_out(slot, a.narrow(1, begin, length), b.narrow(0, begin, length));
      }
    });
    return partial.sum(0);
  }
  at::Tensor out = at::empty({m, n}, a.options());
  const bool by_rows = m >= n;
  at::parallel_for(0, parts, 1, [&](int64_t first, int64_t last) {
    c10::NoGradGuard no_grad;
    for (int64_t p = first; p < last; ++p) {
      if (by_rows) {
        const auto [begin, length] = part_of(m, p, parts);
        at::Tensor rows = out.narrow(0, begin, length);
        at::mm_out(rows, a.narrow(0, begin, length), b);
      } else {  // a column block of a row-major matrix: BLAS writes it in place with ldc = n
        const auto [begin, length] = part_of(n, p, parts);
        at::Tensor columns = out.narrow(1, begin, length);
        at::mm_out(columns, a, b.narrow(1, begin, length));
      }
    }
  });
  return out;
}

// BLAS's ssyrk (Fortran interface, in every libblas.so.3), looked up at run time as OpenBLAS's
// thread setter is (runtime.cpp): LibTorch loads the BLAS but exposes no symmetric product.
using Ssyrk = void (*)(const char* uplo, const char* trans, const int* n, const int* k, const float* alpha,
                       const float* a, const int* lda, const float* beta, float* c, const int* ldc);

Ssyrk blas_ssyrk() {
  static const Ssyrk f = reinterpret_cast<Ssyrk>(dlsym(RTLD_DEFAULT, "ssyrk_"));
  return f;
}

}  // namespace

bool fp32_gram_by_syrk() { return blas_ssyrk() != nullptr; }

namespace {

// F·Fᵀ for an fp32 CPU matrix F (m×k) stored with unit stride along one of its dimensions, by SYRK:
// one triangle, half the multiplications of a general product (OpenBLAS, one thread, Zen 5:
// 64×196608 13.1 against 19.1 ms, 512×3072 9.1 against 16.0 ms), split over ATen's threads by the
// inner dimension (partial triangles, summed), then mirrored, so G is exactly symmetric. Returns an
// undefined tensor where it does not apply (no ssyrk in this BLAS, other strides, sizes past int).
at::Tensor parallel_syrk(const at::Tensor& f) {
  const Ssyrk syrk = blas_ssyrk();
  const int64_t m = f.size(0), k = f.size(1);
  const bool rows = f.stride(1) == 1, columns = f.stride(0) == 1;  // row-major F, or Fᵀ row-major
  const int64_t ld = rows ? f.stride(0) : f.stride(1);
  if (!syrk || !f.is_cpu() || f.scalar_type() != at::kFloat || !(rows || columns) || m < 1 || k < 1 ||
      ld < (rows ? k : m) || std::max({m, k, ld}) > std::numeric_limits<int>::max()) {
    return at::Tensor();
  }
  const int64_t parts = m * m * k < (int64_t{1} << 22) ? 1 : std::clamp<int64_t>(at::get_num_threads(), 1, k);
  // Column-major, as BLAS sees it: a row-major F is Fᵀ (k×m, lda = ld) and G = (Fᵀ)ᵀ·Fᵀ ("T");
  // a row-major Fᵀ is F (m×k) and G = F·Fᵀ ("N"). "U" fills BLAS's upper triangle, our lower one.
  const char uplo = 'U', trans = rows ? 'T' : 'N';
  const float one = 1.0f, zero = 0.0f;
  // zeros: the other triangle is summed too. One part is G itself, not a view of a stack: a view
  // returned from an autograd Function could not be modified in place later.
  at::Tensor partial = parts == 1 ? at::zeros({m, m}, f.options()) : at::zeros({parts, m, m}, f.options());
  at::parallel_for(0, parts, 1, [&](int64_t first, int64_t last) {
    for (int64_t p = first; p < last; ++p) {
      const auto [begin, length] = part_of(k, p, parts);
      if (length == 0) continue;
      const int n = static_cast<int>(m), kk = static_cast<int>(length), lda = static_cast<int>(ld);
      const float* a = f.data_ptr<float>() + begin * (rows ? 1 : ld);
      syrk(&uplo, &trans, &n, &kk, &one, a, &lda, &zero, partial.data_ptr<float>() + p * m * m, &n);
    }
  });
  at::Tensor g = parts == 1 ? partial : partial.sum(0);
  float* gp = g.data_ptr<float>();  // upper from lower, in 32×32 blocks: the reads go down columns
  constexpr int64_t kBlock = 32;
  for (int64_t ib = 0; ib < m; ib += kBlock) {
    for (int64_t jb = ib; jb < m; jb += kBlock) {
      for (int64_t i = ib; i < std::min(ib + kBlock, m); ++i) {
        for (int64_t j = std::max(jb, i + 1); j < std::min(jb + kBlock, m); ++j) gp[i * m + j] = gp[j * m + i];
      }
    }
  }
  return g;
}

// The C×HW feature matrix F of a [1, C, H, W] activation, without a copy. An NCHW tensor is F
// itself; a channels-last one (see vgg19.cpp) is stored as Fᵀ (HW×C), and BLAS takes the transpose
// for free, where reshape would copy a full activation.
at::Tensor feature_matrix(const at::Tensor& features) {
  const int64_t c = features.size(1);
  const int64_t hw = features.size(2) * features.size(3);
  if (features.is_contiguous(at::MemoryFormat::ChannelsLast) && !features.is_contiguous()) {
    return features.permute({0, 2, 3, 1}).view({hw, c}).t();
  }
  return features.reshape({c, hw});
}

// a·b in fp32 for fp32 operands; for bf16 operands (a bf16 network's features) accumulated in fp32
// by oneDNN and rounded once, to `out_type`. bf16·bf16 products are exact in fp32, so the Gram of
// bf16 features matches the fp32 Gram of the same features cast up, at the bf16 matrix-multiply
// rate (AMX: ~1000 GFLOP/s on this project's Xeon vs ~180 for sgemm; the five Gram products and
// their backward measured 17 vs 148 ms at 512 px).
//
// oneDNN threads a product over the output's blocks, and a Gram's C×C output has few: the long
// inner dimension is split here instead, each thread's partial product in fp32, then summed (the
// sum of fp32 partials, where oneDNN's single product adds in another order). 512 px, 2 threads,
// Zen 5, C×HW·HW×C from channels-last storage: C = 64 5.1 → 3.4 ms, 128 3.4 → 2.4, 256 2.8 → 2.2,
// 512 2.3 → 2.1.
at::Tensor product(const at::Tensor& a, const at::Tensor& b, at::ScalarType out_type) {
  if (a.scalar_type() != at::kBFloat16) return parallel_mm(a, b);
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  const int64_t parts = std::min<int64_t>(at::get_num_threads(), k);
  if (out_type == at::kFloat && parts > 1 && k >= m && k >= n && m * n * k >= (int64_t{1} << 22)) {
    at::Tensor partial = at::empty({parts, m, n}, a.options().dtype(at::kFloat));
    at::parallel_for(0, parts, 1, [&](int64_t first, int64_t last) {
      c10::NoGradGuard no_grad;  // as in parallel_mm: no autograd views of features that require grad
      for (int64_t p = first; p < last; ++p) {
        const auto [begin, length] = part_of(k, p, parts);
        at::Tensor slot = partial[p];
        bf16_matmul(a.narrow(1, begin, length), b.narrow(0, begin, length), slot);
      }
    });
    return partial.sum(0);
  }
  at::Tensor out = at::empty({m, n}, a.options().dtype(out_type));
  bf16_matmul(a, b, out);
  return out;
}

// s·F·Fᵀ (fp32) for a [1, C, H, W] activation in either layout: by SYRK for fp32 features where
// the BLAS has it, else by the general product.
at::Tensor scaled_gram(const at::Tensor& features, double scale) {
  const at::Tensor f = feature_matrix(features);
  at::Tensor g = parallel_syrk(f);
  if (!g.defined()) g = product(f, f.t(), at::kFloat);
  return g.mul_(scale);
}

// G = s·F·Fᵀ with one matrix product each way. Autograd's own backward of mm(F, Fᵀ) runs two
// C×C·C×HW products (one per operand), transposes one and adds them: at 512 px that costs
// ~50 ms per iteration on relu1_1 alone. Here dF = s·(dG + dGᵀ)·F: the small C×C matrix is
// symmetrised and a single product remains. The gradient is returned in the activation's own
// memory layout, so that it adds to the gradient from the next layer without a strided copy.
struct GramFunction : torch::autograd::Function<GramFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& features, double scale) {
    RECORD_FUNCTION("stylize::gram", std::vector<c10::IValue>({features}));  // named in profiles (bench/iteration_profile.py)
    ctx->save_for_backward({features});
    ctx->saved_data["scale"] = scale;
    return scaled_gram(features, scale);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const at::Tensor features = ctx->get_saved_variables()[0];
    RECORD_FUNCTION("stylize::gram_backward", std::vector<c10::IValue>({features}));
    const double scale = ctx->saved_data["scale"].toDouble();
    const at::Tensor& dg = grads[0];
    // In bf16 the gradient goes on through the bf16 network, so sym is rounded to bf16 here, once.
    const at::Tensor sym = (dg + dg.t()).mul_(scale).to(features.scalar_type());
    const at::Tensor f = feature_matrix(features);
    const at::ScalarType type = features.scalar_type();
    at::Tensor df;
    if (f.is_contiguous()) {
      df = product(sym, f, type).view(features.sizes());
    } else {  // f = Mᵀ with M the HW×C storage: dM = M·sym (sym is symmetric), in the same layout
      const at::Tensor m = f.t();
      df = product(m, sym, type)
               .view({features.size(0), features.size(2), features.size(3), features.size(1)})
               .permute({0, 3, 1, 2});
    }
    return {df, at::Tensor()};
  }
};

// content_loss (losses.hpp), with ATen's own forward and backward arithmetic, so that values and
// gradient are the same bits as at::mse_loss(F.to(kFloat), P). Autograd's mse_loss_backward
// allocates its gradient NCHW whatever the inputs' layout: for channels-last features (the bf16 CPU
// path) it then runs ATen's
// strided mixed-layout loop (2.4 ms at relu4_2 for 512 px) and its NCHW gradient meets the next
// convolution's channels-last one in the ReLU's backward (3.0 ms, against 0.15 in one layout). Here
// the gradient is written in F's layout and type. (No double backward: mse_loss_backward_out refuses
// inputs that require grad, and nothing here asks for one.)
struct ContentMse : torch::autograd::Function<ContentMse> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& features,
                            const at::Tensor& target) {
    const at::Tensor f = features.to(at::kFloat);
    ctx->save_for_backward({f, target});
    ctx->saved_data["type"] = features.scalar_type();
    return at::mse_loss(f, target);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    at::Tensor d = at::empty_like(saved[0]);  // F's layout
    at::mse_loss_backward_out(d, grads[0], saved[0], saved[1], at::Reduction::Mean);
    return {d.to(ctx->saved_data["type"].toScalarType()), at::Tensor()};
  }
};

}  // namespace

at::Tensor gram_matrix(const at::Tensor& features) {
  return gram_matrix(features, 1.0 / static_cast<double>(features.numel()));
}

at::Tensor gram_matrix(const at::Tensor& features, double scale) {
  const bool bf16_products =
      features.scalar_type() == at::kBFloat16 && features.is_cpu() && bf16_matmul_available();
  // Without native bf16 products (another CPU, CUDA, a build without oneDNN): fp32 from the cast.
  const at::Tensor f = features.scalar_type() == at::kFloat || bf16_products ? features : features.to(at::kFloat);
  if (!f.requires_grad()) return scaled_gram(f, scale);  // targets: no autograd node needed
  return GramFunction::apply(f, scale);
}

at::Tensor content_loss(const at::Tensor& features, const at::Tensor& target) {
  return ContentMse::apply(features, target);
}

at::Tensor total_variation(const at::Tensor& x) {
  const int64_t h = x.size(2), w = x.size(3);
  at::Tensor dy = x.narrow(2, 1, h - 1) - x.narrow(2, 0, h - 1);
  at::Tensor dx = x.narrow(3, 1, w - 1) - x.narrow(3, 0, w - 1);
  return dy.pow(2).sum() + dx.pow(2).sum();
}

StyleTargets compute_style_targets(const Vgg19& net, const LossWeights& w, const std::vector<at::Tensor>& styles,
                                   const std::vector<double>& blend) {
  if (styles.empty()) throw UsageError("at least one style image is needed");
  std::vector<double> b = blend.empty() ? std::vector<double>(styles.size(), 1.0) : blend;
  if (b.size() != styles.size()) {
    throw UsageError(field("style_blend") + " has " + std::to_string(b.size()) + " weights for " +
                     std::to_string(styles.size()) + " style images");
  }
  const double sum = std::accumulate(b.begin(), b.end(), 0.0);
  if (!(sum > 0) || std::any_of(b.begin(), b.end(), [](double v) { return v < 0; })) {
    throw UsageError(field("style_blend") + " weights must be non-negative and not all zero");
  }
  c10::NoGradGuard no_grad;
  StyleTargets t;
  const auto idx = vgg19_layer_indices(w.style_layers);
  if (idx.empty()) return t;
  for (size_t k = 0; k < styles.size(); ++k) {
    auto feats = net.forward(styles[k], idx);
    for (size_t l = 0; l < idx.size(); ++l) {
      at::Tensor g = gram_matrix(feats[l]) * (b[k] / sum);
      if (k == 0) {
        t.grams.push_back(g);
      } else {
        t.grams[l].add_(g);
      }
    }
  }
  return t;
}

ContentTargets compute_content_targets(const Vgg19& net, const LossWeights& w, const at::Tensor& content) {
  c10::NoGradGuard no_grad;
  ContentTargets t;
  const auto idx = vgg19_layer_indices(w.content_layers);
  if (idx.empty()) return t;
  // In the features' own memory layout (channels-last on the bf16 CPU path, vgg19.cpp), so that the
  // content term runs in one layout (ContentMse above says why); the loss sums in the output's memory
  // order, which follows the features either way, so the value is the same bits as against NCHW.
  for (auto& f : net.forward(content, idx)) {
    t.features.push_back(f.to(at::TensorOptions().dtype(at::kFloat), false, true, at::MemoryFormat::Preserve));
  }
  return t;
}

double LossValues::content_sum() const { return std::accumulate(content.begin(), content.end(), 0.0); }
double LossValues::style_sum() const { return std::accumulate(style.begin(), style.end(), 0.0); }

LossValues to_values(const LossTerms& t) {
  // One transfer of all terms at once: on CUDA each .item() would be its own sync.
  std::vector<at::Tensor> all(t.content.begin(), t.content.end());
  all.insert(all.end(), t.style.begin(), t.style.end());
  all.push_back(t.tv);
  all.push_back(t.total);
  at::Tensor v = at::stack(all).detach().to(at::kCPU, at::kDouble);
  const double* p = v.data_ptr<double>();
  LossValues out;
  size_t i = 0;
  for (size_t k = 0; k < t.content.size(); ++k) out.content.push_back(p[i++]);
  for (size_t k = 0; k < t.style.size(); ++k) out.style.push_back(p[i++]);
  out.tv = p[i++];
  out.total = p[i++];
  return out;
}

StyleLoss::StyleLoss(std::shared_ptr<const Vgg19> net, LossWeights weights, ContentTargets content,
                     StyleTargets style)
    : net_(std::move(net)), weights_(std::move(weights)), content_(std::move(content)), style_(std::move(style)) {
  deepest_layer(weights_);  // validates names and weight counts
  layer_indices_ = vgg19_layer_indices(weights_.content_layers);
  for (int i : vgg19_layer_indices(weights_.style_layers)) layer_indices_.push_back(i);
  style_layer_weights_ = weights_.style_layer_weights.empty() ? std::vector<double>(weights_.style_layers.size(), 1.0)
                                                              : weights_.style_layer_weights;
  if (content_.features.size() != weights_.content_layers.size() ||
      style_.grams.size() != weights_.style_layers.size()) {
    throw Error(ExitCode::internal, "loss targets do not match the loss layers");
  }
}

LossTerms StyleLoss::evaluate(const at::Tensor& x) const {
  if (has_region_) return evaluate_region(x);
  LossTerms t;
  auto feats = net_->forward(x, layer_indices_);
  const size_t nc = weights_.content_layers.size();
  for (size_t k = 0; k < nc; ++k) {
    t.content.push_back(content_loss(feats[k], content_.features[k]) * weights_.content_weight);
  }
  for (size_t k = 0; k < weights_.style_layers.size(); ++k) {
    at::Tensor g = gram_matrix(feats[nc + k]);
    t.style.push_back(at::mse_loss(g, style_.grams[k]) * (weights_.style_weight * style_layer_weights_[k]));
  }
  t.tv = total_variation(x) * weights_.tv_weight;
  at::Tensor total = t.tv;
  for (const auto& c : t.content) total = total + c;
  for (const auto& s : t.style) total = total + s;
  t.total = total;
  return t;
}

namespace {

// The positions of `r` at a layer of stride `f` whose activation is fw×fh: [x0, x1) × [y0, y1),
// rounded to the nearest position so that regions which partition the input partition each layer.
struct Span {
  int64_t x0, y0, x1, y1;
};
Span layer_span(const LossRegion& r, int f, int64_t fw, int64_t fh) {
  auto at = [f](int v, int64_t limit) { return std::min<int64_t>(limit, (v + f / 2) / f); };
  return {at(r.x, fw), at(r.y, fh), at(r.x + r.width, fw), at(r.y + r.height, fh)};
}

// The region's part of a [1, C, h, w] activation at layer `index`, in its own memory layout.
at::Tensor region_of(const at::Tensor& f, const LossRegion& r, int index) {
  const Span s = layer_span(r, vgg19_min_side(index), f.size(3), f.size(2));
  if (s.x0 == 0 && s.y0 == 0 && s.x1 == f.size(3) && s.y1 == f.size(2)) return f;
  const at::Tensor v = f.narrow(2, s.y0, std::max<int64_t>(0, s.y1 - s.y0)).narrow(3, s.x0, std::max<int64_t>(0, s.x1 - s.x0));
  return v.contiguous(f.suggest_memory_format());
}

// C · N: the whole image's normalisation at layer `index` (max and average pooling both floor).
double whole_count(const at::Tensor& f, const LossRegion& r, int index) {
  const int64_t s = vgg19_min_side(index);
  return static_cast<double>(f.size(1)) * static_cast<double>(r.whole_width / s) * static_cast<double>(r.whole_height / s);
}

// Σ squared neighbour differences of x ([1, 3, h, w]) whose first pixel lies in the region.
at::Tensor region_tv(const at::Tensor& x, const LossRegion& r) {
  const int64_t h = x.size(2), w = x.size(3);
  const int64_t x0 = r.x, y0 = r.y, x1 = std::min<int64_t>(w, r.x + r.width), y1 = std::min<int64_t>(h, r.y + r.height);
  at::Tensor tv = at::zeros({}, x.options());
  const int64_t rows = std::min(y1, h - 1) - y0, cols = std::min(x1, w - 1) - x0;
  if (rows > 0 && x1 > x0) {
    const at::Tensor a = x.narrow(3, x0, x1 - x0);
    tv = tv + (a.narrow(2, y0 + 1, rows) - a.narrow(2, y0, rows)).pow(2).sum();
  }
  if (cols > 0 && y1 > y0) {
    const at::Tensor a = x.narrow(2, y0, y1 - y0);
    tv = tv + (a.narrow(3, x0 + 1, cols) - a.narrow(3, x0, cols)).pow(2).sum();
  }
  return tv;
}

}  // namespace

LossSums& LossSums::operator+=(const LossSums& o) {
  if (content.empty() && grams.empty() && tv == 0) {
    content = o.content;
    for (const auto& g : o.grams) grams.push_back(g.clone());
    tv = o.tv;
    return *this;
  }
  for (size_t k = 0; k < content.size(); ++k) content[k] += o.content[k];
  for (size_t k = 0; k < grams.size(); ++k) grams[k].add_(o.grams[k]);
  tv += o.tv;
  return *this;
}

LossSums& LossSums::operator-=(const LossSums& o) {
  for (size_t k = 0; k < content.size(); ++k) content[k] -= o.content[k];
  for (size_t k = 0; k < grams.size(); ++k) grams[k].sub_(o.grams[k]);
  tv -= o.tv;
  return *this;
}

LossValues loss_values(const LossWeights& w, const StyleTargets& style, const LossSums& whole) {
  LossValues v;
  for (double c : whole.content) v.content.push_back(w.content_weight * c);
  for (size_t k = 0; k < whole.grams.size(); ++k) {
    const double layer = w.style_layer_weights.empty() ? 1.0 : w.style_layer_weights[k];
    v.style.push_back(w.style_weight * layer * at::mse_loss(whole.grams[k], style.grams[k]).item<double>());
  }
  v.tv = w.tv_weight * whole.tv;
  v.total = v.content_sum() + v.style_sum() + v.tv;
  return v;
}

// The region's parts at x as tensors, autograd following them when x requires grad: per content
// layer Σ (F − P)² and per style layer Σ f·fᵀ, each over the region's positions and divided by the
// whole image's C · N; the TV sum of the pairs the region owns.
StyleLoss::RegionParts StyleLoss::region_parts(const at::Tensor& x, const LossRegion& r) const {
  RegionParts parts;
  auto feats = net_->forward(x, layer_indices_);
  const size_t nc = weights_.content_layers.size();
  for (size_t k = 0; k < nc; ++k) {
    const int index = layer_indices_[k];
    const at::Tensor d = region_of(feats[k], r, index).to(at::kFloat) - region_of(content_.features[k], r, index);
    parts.content.push_back(d.pow(2).sum() / whole_count(feats[k], r, index));
  }
  for (size_t k = 0; k < weights_.style_layers.size(); ++k) {
    const int index = layer_indices_[nc + k];
    parts.grams.push_back(gram_matrix(region_of(feats[nc + k], r, index), 1.0 / whole_count(feats[nc + k], r, index)));
  }
  parts.tv = region_tv(x, r);
  return parts;
}

LossSums StyleLoss::sums(const at::Tensor& x, const LossRegion& region) const {
  c10::NoGradGuard no_grad;
  RegionParts parts = region_parts(x, region);
  LossSums s;
  for (const auto& c : parts.content) s.content.push_back(c.item<double>());
  s.grams = std::move(parts.grams);
  s.tv = parts.tv.item<double>();
  return s;
}

// evaluate() for a crop of a larger image: the whole image's terms from the region's parts, each
// Gram matrix completed by the fixed rest.
LossTerms StyleLoss::evaluate_region(const at::Tensor& x) const {
  const LossRegion& r = region_;
  const RegionParts parts = region_parts(x, r);
  LossTerms t;
  for (const auto& c : parts.content) t.content.push_back(c * weights_.content_weight);
  const bool mean_field = r.gram_share > 0 && r.gram_before.size() == parts.grams.size();
  for (size_t k = 0; k < parts.grams.size(); ++k) {
    at::Tensor g = parts.grams[k];
    double weight = weights_.style_weight * style_layer_weights_[k];
    if (mean_field) {  // LossRegion::gram_share
      g = r.gram_rest[k] + r.gram_before[k] + (g - r.gram_before[k]) * (1.0 / r.gram_share);
      weight *= r.gram_share;
    } else if (k < r.gram_rest.size() && r.gram_rest[k].defined()) {
      g = g + r.gram_rest[k];
    }
    t.style.push_back(at::mse_loss(g, style_.grams[k]) * weight);
  }
  t.tv = parts.tv * weights_.tv_weight;
  at::Tensor total = t.tv;
  for (const auto& c : t.content) total = total + c;
  for (const auto& s : t.style) total = total + s;
  t.total = total;
  return t;
}

}  // namespace stylize
