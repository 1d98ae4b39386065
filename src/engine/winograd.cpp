#include "winograd.hpp"

#include "bf16_matmul.hpp"
#include "vector_copies.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace stylize {
namespace {

// F(4×4, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015): a 6×6 input
// patch d gives a 4×4 output tile Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A. The points 0, ±1, ±2 and ∞ keep the
// transforms' constants small (the largest is 8 in Aᵀ), which is what keeps fp32 error near 1e-5.
constexpr int kTile = 4;    // outputs per tile side
constexpr int kPatch = 6;   // inputs per tile side: kTile + 3 - 1
constexpr int kPoints = 36; // kPatch²

// Transient memory for one band of tiles' transformed inputs; the products' outputs take as much
// again for K = C. 8 MiB against 32 (one layer alone, 2 threads, capped to AVX2, 512 px): conv1_2
// 33/34 against 35/38 ms forward/input gradient, conv3_x 21/23 against 21/25; 4 MiB and below no
// better (the products thin out: 48 tiles at conv4 and 512 px). A band's V and M (16 MiB) can stay
// in a 16-32 MiB L3, which should matter more where memory is slower than here (not measured).
constexpr int64_t kBandBytes = 8ll << 20;

at::Tensor transform_kernels(const at::Tensor& weight) {
  if (weight.dim() != 4 || weight.size(2) != 3 || weight.size(3) != 3) {
    throw std::invalid_argument("winograd: weights must be [K, C, 3, 3]");
  }
  static const double g[kPatch][3] = {{1.0 / 4, 0, 0},
                                      {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                      {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                      {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                      {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                      {0, 0, 1}};
  const at::Tensor w = weight.detach().cpu().to(at::kDouble).contiguous();
  const int64_t kk = w.size(0), cc = w.size(1);
  at::Tensor u = at::empty({kPoints, kk, cc}, at::kFloat);
  const double* wp = w.data_ptr<double>();
  float* up = u.data_ptr<float>();
  // In double, so that the transform adds no rounding of its own beyond the final cast.
  at::parallel_for(0, kk * cc, 64, [&](int64_t first, int64_t last) {
    for (int64_t kc = first; kc < last; ++kc) {
      const double* k3 = wp + kc * 9;
      double gk[kPatch][3];  // G·g
      for (int a = 0; a < kPatch; ++a) {
        for (int j = 0; j < 3; ++j) gk[a][j] = g[a][0] * k3[j] + g[a][1] * k3[3 + j] + g[a][2] * k3[6 + j];
      }
      for (int a = 0; a < kPatch; ++a) {
        for (int b = 0; b < kPatch; ++b) {
          const double v = gk[a][0] * g[b][0] + gk[a][1] * g[b][1] + gk[a][2] * g[b][2];
          up[(a * kPatch + b) * kk * cc + kc] = static_cast<float>(v);
        }
      }
    }
  });
  return u;
}

struct Geometry {
  int64_t n, c, h, w;  // input
  int64_t k;           // output channels
  int64_t th, tw;      // tiles down and across
};

// The four transforms below are plain loops over contiguous runs, so that the compiler vectorises
// them, and each is compiled three times (vector_copies.hpp: AVX-512, AVX2, the baseline). Written
// first with stride-4 reads and writes, they took 60-75% of a 64- or 128-channel layer's time (2
// threads, Zen 5). A row is held in *phases*: ph[m·n + j] is the row's column 4j + m (m = 0..3), so
// that the six columns 4j .. 4j+5 a tile reads are ph0[j] .. ph3[j], ph0[j+1], ph1[j+1]: contiguous runs.

// One band of tile rows [row0, row1) of image `img`: what a transform reads (x, M, dy or F) and writes
// (V, y, E or dx). The channels each call covers come with the call.
struct Band {
  const Geometry* g;
  int64_t img, row0, row1;
  const float* src;
  float* dst;
  const float* bias;  // the output transform's; may be null
};

// Floats of scratch one task of any transform needs (inputs: a line, six rows and their transforms,
// all in phases of tw + 1 tiles).
int64_t scratch_floats(const Geometry& g) { return 52 * (g.tw + 1); }

// Row y of a plane (zero outside [0, h)), shifted right by `offset` columns, into the phases of n tiles:
// ph[m·n + j] = plane[y][4j + m − offset], zero outside [0, w). `line`: scratch of 4n floats.
STYLIZE_ALWAYS_INLINE void load_phases(const float* plane, const Geometry& g, int64_t y, int64_t offset, int64_t n,
                                         float* __restrict line, float* ph) {
  const int64_t width = 4 * n;
  if (y >= 0 && y < g.h) {
    std::fill(line, line + offset, 0.f);
    std::copy(plane + y * g.w, plane + (y + 1) * g.w, line + offset);
    std::fill(line + offset + g.w, line + width, 0.f);
  } else {
    std::fill(line, line + width, 0.f);
  }
  float* __restrict p0 = ph;
  float* __restrict p1 = ph + n;
  float* __restrict p2 = ph + 2 * n;
  float* __restrict p3 = ph + 3 * n;
  for (int64_t j = 0; j < n; ++j) {
    p0[j] = line[4 * j];
    p1[j] = line[4 * j + 1];
    p2[j] = line[4 * j + 2];
    p3[j] = line[4 * j + 3];
  }
}

// out[4j + e] = ph[e·n + j] for the columns within [0, w): a row of four phases of n tiles back in order.
STYLIZE_ALWAYS_INLINE void store_phases(const float* __restrict ph, int64_t n, float* __restrict out, int64_t w) {
  const int64_t whole = std::min(n, w / kTile);
  for (int64_t j = 0; j < whole; ++j) {
    out[4 * j] = ph[j];
    out[4 * j + 1] = ph[n + j];
    out[4 * j + 2] = ph[2 * n + j];
    out[4 * j + 3] = ph[3 * n + j];
  }
  for (int64_t x = whole * kTile; x < w; ++x) out[x] = ph[(x % kTile) * n + x / kTile];
}

// Bᵀ down six rows d0..d5, n values each: o_a = Σ_b Bᵀ[a][b]·d_b.
STYLIZE_ALWAYS_INLINE void input_rows(const float* __restrict d0, const float* __restrict d1,
                                        const float* __restrict d2, const float* __restrict d3,
                                        const float* __restrict d4, const float* __restrict d5, float* __restrict o0,
                                        float* __restrict o1, float* __restrict o2, float* __restrict o3,
                                        float* __restrict o4, float* __restrict o5, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {
    o0[x] = 4 * d0[x] - 5 * d2[x] + d4[x];
    o1[x] = -4 * (d1[x] + d2[x]) + d3[x] + d4[x];
    o2[x] = 4 * (d1[x] - d2[x]) - d3[x] + d4[x];
    o3[x] = 2 * (d3[x] - d1[x]) - d2[x] + d4[x];
    o4[x] = 2 * (d1[x] - d3[x]) - d2[x] + d4[x];
    o5[x] = 4 * d1[x] - 5 * d3[x] + d5[x];
  }
}

// V[p][c][t] = (Bᵀ d B)[p] for the tiles of the band, channels [first, last); t counts the band's tiles
// row-major. Each channel reads its plane once and writes 36 contiguous runs per tile row.
STYLIZE_ALWAYS_INLINE void inputs_body(const Band& b, int64_t first, int64_t last, float* scratch) {
  const Geometry& g = *b.g;
  const int64_t n = g.tw + 1, band_tiles = (b.row1 - b.row0) * g.tw, stride = g.c * band_tiles;
  float* line = scratch;        // 4n
  float* rows = line + 4 * n;   // the six patch rows 4i-1 .. 4i+4, in phases: 6 × 4n
  float* cols = rows + 24 * n;  // Bᵀ·rows: 6 × 4n
  for (int64_t c = first; c < last; ++c) {
    const float* plane = b.src + (b.img * g.c + c) * g.h * g.w;
    for (int64_t i = b.row0; i < b.row1; ++i) {
      for (int r = 0; r < kPatch; ++r) load_phases(plane, g, i * kTile - 1 + r, 1, n, line, rows + r * 4 * n);
      input_rows(rows, rows + 4 * n, rows + 8 * n, rows + 12 * n, rows + 16 * n, rows + 20 * n, cols, cols + 4 * n,
                 cols + 8 * n, cols + 12 * n, cols + 16 * n, cols + 20 * n, 4 * n);
      const int64_t t0 = (i - b.row0) * g.tw;
      for (int a = 0; a < kPatch; ++a) {
        const float* p = cols + a * 4 * n;  // Bᵀ across: the columns 4j .. 4j+5 are p0[j] .. p3[j], p0[j+1], p1[j+1]
        float* out = b.dst + (a * kPatch * g.c + c) * band_tiles + t0;
        input_rows(p, p + n, p + 2 * n, p + 3 * n, p + 1, p + n + 1, out, out + stride, out + 2 * stride,
                   out + 3 * stride, out + 4 * stride, out + 5 * stride, g.tw);
      }
    }
  }
}

// Aᵀ down six rows s0..s5, n values each, plus `bias`: q_r = Σ_a Aᵀ[r][a]·s_a + bias.
STYLIZE_ALWAYS_INLINE void output_rows(const float* __restrict s0, const float* __restrict s1,
                                         const float* __restrict s2, const float* __restrict s3,
                                         const float* __restrict s4, const float* __restrict s5, float* __restrict q0,
                                         float* __restrict q1, float* __restrict q2, float* __restrict q3, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const float p12 = s1[j] + s2[j], m12 = s1[j] - s2[j];
    const float p34 = s3[j] + s4[j], m34 = s3[j] - s4[j];
    q0[j] = s0[j] + p12 + p34;
    q1[j] = m12 + 2 * m34;
    q2[j] = p12 + 4 * p34;
    q3[j] = m12 + 8 * m34 + s5[j];
  }
}

// y's rows of the band from M[p][k][t]: Aᵀ m A plus the bias, cut at the image's edge, channels
// [first, last).
STYLIZE_ALWAYS_INLINE void outputs_body(const Band& b, int64_t first, int64_t last, float* scratch) {
  const Geometry& g = *b.g;
  const int64_t tw = g.tw, band_tiles = (b.row1 - b.row0) * tw;
  float* q = scratch;       // q[r][b][j] = (Aᵀ m)[r][b] of tile j: 24·tw
  float* ph = q + 24 * tw;  // one output row in phases: 4·tw
  for (int64_t k = first; k < last; ++k) {
    float* plane = b.dst + (b.img * g.k + k) * g.h * g.w;
    const float b0 = b.bias ? b.bias[k] : 0.f;
    for (int64_t i = b.row0; i < b.row1; ++i) {
      const int64_t t0 = (i - b.row0) * tw;
      for (int col = 0; col < kPatch; ++col) {
        const float* s = b.src + (col * g.k + k) * band_tiles + t0;  // point (a, col) is s + a·6·K·tiles
        const int64_t pa = kPatch * g.k * band_tiles;
        output_rows(s, s + pa, s + 2 * pa, s + 3 * pa, s + 4 * pa, s + 5 * pa, q + col * tw, q + (kPatch + col) * tw,
                    q + (2 * kPatch + col) * tw, q + (3 * kPatch + col) * tw, tw);
      }
      for (int r = 0; r < kTile; ++r) {
        const int64_t row = i * kTile + r;
        if (row >= g.h) break;
        const float* qr = q + r * kPatch * tw;
        output_rows(qr, qr + tw, qr + 2 * tw, qr + 3 * tw, qr + 4 * tw, qr + 5 * tw, ph, ph + tw, ph + 2 * tw,
                    ph + 3 * tw, tw);
        for (int64_t j = 0; j < 4 * tw; ++j) ph[j] += b0;
        store_phases(ph, tw, plane + row * g.w, g.w);
      }
    }
  }
}

// A·y down four rows (the output transform's transpose), n values each: e_a = Σ_r Aᵀ[r][a]·y_r.
STYLIZE_ALWAYS_INLINE void output_adjoint(const float* __restrict y0, const float* __restrict y1,
                                            const float* __restrict y2, const float* __restrict y3, float* __restrict e0,
                                            float* __restrict e1, float* __restrict e2, float* __restrict e3,
                                            float* __restrict e4, float* __restrict e5, int64_t n) {
  for (int64_t x = 0; x < n; ++x) {
    const float p02 = y0[x] + y2[x], p13 = y1[x] + y3[x];
    e0[x] = y0[x];
    e1[x] = p02 + p13;
    e2[x] = p02 - p13;
    e3[x] = y0[x] + 2 * y1[x] + 4 * y2[x] + 8 * y3[x];
    e4[x] = y0[x] - 2 * y1[x] + 4 * y2[x] - 8 * y3[x];
    e5[x] = y3[x];
  }
}

// E[p][k][t] = (A·dy·Aᵀ)[p] for the 4×4 output tiles of the band (zero beyond the image's edge, where
// the forward pass wrote nothing), channels [first, last).
STYLIZE_ALWAYS_INLINE void adjoint_outputs_body(const Band& b, int64_t first, int64_t last, float* scratch) {
  const Geometry& g = *b.g;
  const int64_t tw = g.tw, band_tiles = (b.row1 - b.row0) * tw, stride = g.k * band_tiles;
  float* line = scratch;          // 4·tw
  float* rows = line + 4 * tw;    // the tile rows 4i .. 4i+3 in phases: 4 × 4·tw
  float* cols = rows + 16 * tw;   // A·rows: 6 × 4·tw
  for (int64_t k = first; k < last; ++k) {
    const float* plane = b.src + (b.img * g.k + k) * g.h * g.w;
    for (int64_t i = b.row0; i < b.row1; ++i) {
      for (int r = 0; r < kTile; ++r) load_phases(plane, g, i * kTile + r, 0, tw, line, rows + r * 4 * tw);
      output_adjoint(rows, rows + 4 * tw, rows + 8 * tw, rows + 12 * tw, cols, cols + 4 * tw, cols + 8 * tw,
                     cols + 12 * tw, cols + 16 * tw, cols + 20 * tw, 4 * tw);
      const int64_t t0 = (i - b.row0) * tw;
      for (int a = 0; a < kPatch; ++a) {
        const float* p = cols + a * 4 * tw;  // a tile's four columns are p0[j] .. p3[j]
        float* out = b.dst + (a * kPatch * g.k + k) * band_tiles + t0;
        output_adjoint(p, p + tw, p + 2 * tw, p + 3 * tw, out, out + stride, out + 2 * stride, out + 3 * stride,
                       out + 4 * stride, out + 5 * stride, tw);
      }
    }
  }
}

// Bᵀ's transpose down six rows f0..f5, n values each: o_r = Σ_a Bᵀ[a][r]·f_a.
STYLIZE_ALWAYS_INLINE void input_adjoint(const float* __restrict f0, const float* __restrict f1,
                                           const float* __restrict f2, const float* __restrict f3,
                                           const float* __restrict f4, const float* __restrict f5, float* __restrict o0,
                                           float* __restrict o1, float* __restrict o2, float* __restrict o3,
                                           float* __restrict o4, float* __restrict o5, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    o0[j] = 4 * f0[j];
    o1[j] = 4 * (f2[j] - f1[j] + f5[j]) + 2 * (f4[j] - f3[j]);
    o2[j] = -5 * f0[j] - 4 * (f1[j] + f2[j]) - f3[j] - f4[j];
    o3[j] = f1[j] - f2[j] + 2 * (f3[j] - f4[j]) - 5 * f5[j];
    o4[j] = f0[j] + f1[j] + f2[j] + f3[j] + f4[j];
    o5[j] = f5[j];
  }
}

// dx += B·F·Bᵀ of each tile of the band, over the tile's 6×6 input patch (patches overlap by two rows
// and columns; what falls on the padding is dropped), channels [first, last). A channel's plane is
// written by its task alone.
STYLIZE_ALWAYS_INLINE void adjoint_inputs_body(const Band& b, int64_t first, int64_t last, float* scratch) {
  const Geometry& g = *b.g;
  const int64_t tw = g.tw, band_tiles = (b.row1 - b.row0) * tw, pa = kPatch * g.c * band_tiles;
  float* q = scratch;         // q[r][b][j]: 36·tw
  float* e = q + 36 * tw;     // one patch row of every tile: e[m][j] = column 4j + m of tile j's patch, 6·tw
  float* line = e + 6 * tw;   // that row with the tiles' overlaps summed: 4·tw + 2 columns
  for (int64_t c = first; c < last; ++c) {
    float* plane = b.dst + (b.img * g.c + c) * g.h * g.w;
    for (int64_t i = b.row0; i < b.row1; ++i) {
      const int64_t t0 = (i - b.row0) * tw;
      for (int col = 0; col < kPatch; ++col) {
        const float* s = b.src + (col * g.c + c) * band_tiles + t0;  // point (a, col) is s + a·pa
        input_adjoint(s, s + pa, s + 2 * pa, s + 3 * pa, s + 4 * pa, s + 5 * pa, q + col * tw, q + (kPatch + col) * tw,
                      q + (2 * kPatch + col) * tw, q + (3 * kPatch + col) * tw, q + (4 * kPatch + col) * tw,
                      q + (5 * kPatch + col) * tw, tw);
      }
      for (int r = 0; r < kPatch; ++r) {
        const int64_t y = i * kTile - 1 + r;
        if (y < 0 || y >= g.h) continue;
        const float* qr = q + r * kPatch * tw;
        input_adjoint(qr, qr + tw, qr + 2 * tw, qr + 3 * tw, qr + 4 * tw, qr + 5 * tw, e, e + tw, e + 2 * tw,
                      e + 3 * tw, e + 4 * tw, e + 5 * tw, tw);
        // Column 4j + m is tile j's m and, for m < 2, tile j-1's m + 4 (the same two sums as adding the
        // tiles in order onto zeros, but for the sign of a zero, which dx's += cannot see).
        store_phases(e, tw, line, 4 * tw);
        line[4 * tw] = 0.f;
        line[4 * tw + 1] = 0.f;
        for (int64_t j = 0; j < tw; ++j) {
          line[4 * j + 4] += e[4 * tw + j];
          line[4 * j + 5] += e[5 * tw + j];
        }
        float* __restrict out = plane + y * g.w;
        const float* __restrict in = line + 1;
        for (int64_t x = 0; x < g.w; ++x) out[x] += in[x];
      }
    }
  }
}

using TransformBody = void (*)(const Band&, int64_t first, int64_t last, float* scratch);

// The four transforms compiled for one instruction set.
struct Transforms {
  TransformBody inputs, outputs, adjoint_outputs, adjoint_inputs;
};

#define STYLIZE_WINOGRAD_TRANSFORMS(name, attributes)                                                                    \
  attributes void name##_inputs(const Band& b, int64_t f, int64_t l, float* s) { inputs_body(b, f, l, s); }            \
  attributes void name##_outputs(const Band& b, int64_t f, int64_t l, float* s) { outputs_body(b, f, l, s); }          \
  attributes void name##_adjoint_outputs(const Band& b, int64_t f, int64_t l, float* s) {                              \
    adjoint_outputs_body(b, f, l, s);                                                                                  \
  }                                                                                                                    \
  attributes void name##_adjoint_inputs(const Band& b, int64_t f, int64_t l, float* s) {                               \
    adjoint_inputs_body(b, f, l, s);                                                                                   \
  }                                                                                                                    \
  constexpr Transforms name = {name##_inputs, name##_outputs, name##_adjoint_outputs, name##_adjoint_inputs};

STYLIZE_VECTOR_COPIES(Transforms, transforms, STYLIZE_WINOGRAD_TRANSFORMS)

// Runs `body` over `channels` channels of one band on ATen's threads, a channel per task.
void run_transform(TransformBody body, const Band& band, int64_t channels) {
  const int64_t scratch = scratch_floats(*band.g);
  at::parallel_for(0, channels, 1, [&](int64_t first, int64_t last) {
    std::vector<float> s(scratch);
    body(band, first, last, s.data());
  });
}

// out[p] = a[p]·b[p] for the 36 points: a [36, m, k] (any strides within a point), b [36, k, n] and
// out [36, m, n] contiguous. oneDNN's matmul runs on the same OpenMP threads as the transforms around
// it; BLAS (OpenBLAS's own pthreads) competed with OpenMP's spinning workers on 2 cores and lost ~20%.
void batched_products(const at::Tensor& a, const at::Tensor& b, at::Tensor& out) {
  if (onednn_matmul_available()) {
    onednn_matmul(a, b, out);
  } else {
    at::bmm_out(out, a, b);
  }
}

// x is the input ([N, C, H, W]) or the output gradient ([N, K, H, W]): only N, H and W are taken from it.
Geometry geometry(const at::Tensor& x, int64_t in_channels, int64_t out_channels) {
  Geometry g{x.size(0), in_channels, x.size(2), x.size(3), out_channels, 0, 0};
  g.th = (g.h + kTile - 1) / kTile;
  g.tw = (g.w + kTile - 1) / kTile;
  return g;
}

// Calls run(img, row0, row1, tiles) for each band of tile rows [row0, row1) of each image: as many rows
// as keep one band's transformed tensors within kBandBytes.
template <typename Run>
void for_each_band(const Geometry& g, Run run) {
  const int64_t per_row = kPoints * std::max(g.c, g.k) * g.tw * static_cast<int64_t>(sizeof(float));
  const int64_t rows = std::clamp<int64_t>(kBandBytes / per_row, 1, g.th);
  for (int64_t img = 0; img < g.n; ++img) {
    for (int64_t row0 = 0; row0 < g.th; row0 += rows) {
      const int64_t row1 = std::min(g.th, row0 + rows);
      run(img, row0, row1, (row1 - row0) * g.tw);
    }
  }
}

void check_operands(const at::Tensor& x, const at::Tensor& u, int64_t channels, const char* what) {
  if (!x.is_cpu() || x.scalar_type() != at::kFloat || x.dim() != 4 || !u.is_cpu() || u.dim() != 3 ||
      u.size(0) != kPoints || u.scalar_type() != at::kFloat || channels != x.size(1)) {
    throw std::invalid_argument(std::string(what) +
                                ": needs an fp32 CPU tensor [N, C, H, W] and fp32 CPU weights [36, K, C] that match");
  }
}

}  // namespace

at::Tensor winograd_weights(const at::Tensor& weight) { return transform_kernels(weight); }

at::Tensor winograd_conv3x3(const at::Tensor& input, const at::Tensor& u, const at::Tensor& bias,
                            VectorCopy which) {
  check_operands(input, u, u.size(2), "winograd_conv3x3");
  const at::Tensor x = input.contiguous(), uc = u.contiguous();
  const Geometry g = geometry(x, uc.size(2), uc.size(1));
  const at::Tensor b = bias.defined() ? bias.to(at::kFloat).contiguous() : bias;
  if (b.defined() && b.numel() != g.k) throw std::invalid_argument("winograd_conv3x3: bias must have K values");
  at::Tensor y = at::empty({g.n, g.k, g.h, g.w}, x.options());
  for_each_band(g, [&](int64_t img, int64_t row0, int64_t row1, int64_t tiles) {
    at::Tensor v = at::empty({kPoints, g.c, tiles}, x.options());
    run_transform(transforms(which).inputs, Band{&g, img, row0, row1, x.data_ptr<float>(), v.data_ptr<float>(), nullptr}, g.c);
    at::Tensor m = at::empty({kPoints, g.k, tiles}, x.options());
    batched_products(uc, v, m);  // [36, K, tiles]: the 36 products
    run_transform(transforms(which).outputs,
                  Band{&g, img, row0, row1, m.data_ptr<float>(), y.data_ptr<float>(),
                       b.defined() ? b.data_ptr<float>() : nullptr},
                  g.k);
  });
  return y;
}

at::Tensor winograd_conv3x3_input_gradient(const at::Tensor& grad, const at::Tensor& u, VectorCopy which) {
  check_operands(grad, u, u.size(1), "winograd_conv3x3_input_gradient");
  const at::Tensor dy = grad.contiguous(), uc = u.contiguous();
  const Geometry g = geometry(dy, uc.size(2), uc.size(1));
  at::Tensor dx = at::zeros({g.n, g.c, g.h, g.w}, dy.options());
  const at::Tensor ut = uc.transpose(1, 2);  // [36, C, K], a view: the matmul reads it transposed
  for_each_band(g, [&](int64_t img, int64_t row0, int64_t row1, int64_t tiles) {
    at::Tensor e = at::empty({kPoints, g.k, tiles}, dy.options());
    run_transform(transforms(which).adjoint_outputs,
                  Band{&g, img, row0, row1, dy.data_ptr<float>(), e.data_ptr<float>(), nullptr}, g.k);
    at::Tensor f = at::empty({kPoints, g.c, tiles}, dy.options());
    batched_products(ut, e, f);  // [36, C, tiles]
    run_transform(transforms(which).adjoint_inputs,
                  Band{&g, img, row0, row1, f.data_ptr<float>(), dx.data_ptr<float>(), nullptr}, g.c);
  });
  return dx;
}

}  // namespace stylize
