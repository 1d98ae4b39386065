#include "winograd.hpp"

#include "bf16_matmul.hpp"

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
// again for K = C. Bands of >= 512 tiles keep the products near their best rate (measured with BLAS:
// at 64 tiles it loses a third).
constexpr int64_t kBandBytes = 32ll << 20;

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

// Bᵀ down the six patch rows d0..d5, for each of their first n columns: o_a[x] = Σ_b Bᵀ[a][b]·d_b[x].
inline void input_rows(const float* d0, const float* d1, const float* d2, const float* d3, const float* d4,
                       const float* d5, float* const o[kPatch], int64_t n) {
  for (int64_t x = 0; x < n; ++x) {
    o[0][x] = 4 * d0[x] - 5 * d2[x] + d4[x];
    o[1][x] = -4 * (d1[x] + d2[x]) + d3[x] + d4[x];
    o[2][x] = 4 * (d1[x] - d2[x]) - d3[x] + d4[x];
    o[3][x] = 2 * (d3[x] - d1[x]) - d2[x] + d4[x];
    o[4][x] = 2 * (d1[x] - d3[x]) - d2[x] + d4[x];
    o[5][x] = 4 * d1[x] - 5 * d3[x] + d5[x];
  }
}

// Bᵀ applied to six consecutive values d[0..5]; out[b * stride] for b = 0..5.
inline void input_cols(const float* d, float* out, int64_t stride) {
  out[0] = 4 * d[0] - 5 * d[2] + d[4];
  out[stride] = -4 * (d[1] + d[2]) + d[3] + d[4];
  out[2 * stride] = 4 * (d[1] - d[2]) - d[3] + d[4];
  out[3 * stride] = 2 * (d[3] - d[1]) - d[2] + d[4];
  out[4 * stride] = 2 * (d[1] - d[3]) - d[2] + d[4];
  out[5 * stride] = 4 * d[1] - 5 * d[3] + d[5];
}

struct Geometry {
  int64_t n, c, h, w;  // input
  int64_t k;           // output channels
  int64_t th, tw;      // tiles down and across
};

// Rows [first, first + count) of a plane into `out` (count rows of `width`), each at column `offset`,
// zero where the row is outside the image or the columns run past it: the convolution's padding.
inline void load_rows(const float* plane, const Geometry& g, int64_t first, int count, int64_t offset,
                      int64_t width, float* out) {
  for (int r = 0; r < count; ++r) {
    float* dst = out + r * width;
    const int64_t y = first + r;
    std::fill(dst, dst + width, 0.f);
    if (y >= 0 && y < g.h) std::copy(plane + y * g.w, plane + (y + 1) * g.w, dst + offset);
  }
}

// V[p][c][t] = (Bᵀ d B)[p] for the tiles of rows [row0, row1) of image `img`; t counts tiles of the
// band row-major. Each channel is one task: it reads its plane once and writes 36 contiguous runs.
void transform_inputs(const float* x, const Geometry& g, int64_t img, int64_t row0, int64_t row1, float* v) {
  const int64_t band_tiles = (row1 - row0) * g.tw, wp = g.tw * kTile + 2;
  at::parallel_for(0, g.c, 1, [&](int64_t c0, int64_t c1) {
    std::vector<float> rows(kPatch * wp), cols(kPatch * wp);
    for (int64_t c = c0; c < c1; ++c) {
      const float* plane = x + (img * g.c + c) * g.h * g.w;
      for (int64_t i = row0; i < row1; ++i) {
        load_rows(plane, g, i * kTile - 1, kPatch, 1, wp, rows.data());  // the patch rows 4i-1 .. 4i+4
        const float* rb = rows.data();
        float* const o[kPatch] = {cols.data(), cols.data() + wp, cols.data() + 2 * wp,
                                  cols.data() + 3 * wp, cols.data() + 4 * wp, cols.data() + 5 * wp};
        input_rows(rb, rb + wp, rb + 2 * wp, rb + 3 * wp, rb + 4 * wp, rb + 5 * wp, o, wp);
        const int64_t t0 = (i - row0) * g.tw;
        for (int a = 0; a < kPatch; ++a) {
          float* out = v + (a * kPatch * g.c + c) * band_tiles + t0;
          for (int64_t j = 0; j < g.tw; ++j) input_cols(o[a] + j * kTile, out + j, g.c * band_tiles);
        }
      }
    }
  });
}

// y's rows of the band from M[p][k][t]: Aᵀ m A plus the bias, cut at the image's edge.
void transform_outputs(const float* m, const float* bias, const Geometry& g, int64_t img, int64_t row0,
                       int64_t row1, float* y) {
  const int64_t band_tiles = (row1 - row0) * g.tw;
  at::parallel_for(0, g.k, 1, [&](int64_t k0, int64_t k1) {
    std::vector<float> q(kTile * kPatch * g.tw);  // q[r][b][j] = (Aᵀ m)[r][b] of tile j
    for (int64_t k = k0; k < k1; ++k) {
      float* plane = y + (img * g.k + k) * g.h * g.w;
      const float b0 = bias ? bias[k] : 0.f;
      for (int64_t i = row0; i < row1; ++i) {
        const int64_t t0 = (i - row0) * g.tw;
        for (int b = 0; b < kPatch; ++b) {
          const float* s[kPatch];
          for (int a = 0; a < kPatch; ++a) s[a] = m + ((a * kPatch + b) * g.k + k) * band_tiles + t0;
          float* q0 = q.data() + (0 * kPatch + b) * g.tw;
          float* q1 = q.data() + (1 * kPatch + b) * g.tw;
          float* q2 = q.data() + (2 * kPatch + b) * g.tw;
          float* q3 = q.data() + (3 * kPatch + b) * g.tw;
          for (int64_t j = 0; j < g.tw; ++j) {
            const float p12 = s[1][j] + s[2][j], m12 = s[1][j] - s[2][j];
            const float p34 = s[3][j] + s[4][j], m34 = s[3][j] - s[4][j];
            q0[j] = s[0][j] + p12 + p34;
            q1[j] = m12 + 2 * m34;
            q2[j] = p12 + 4 * p34;
            q3[j] = m12 + 8 * m34 + s[5][j];
          }
        }
        for (int r = 0; r < kTile; ++r) {
          const int64_t row = i * kTile + r;
          if (row >= g.h) break;
          float* out = plane + row * g.w;
          const float* qr = q.data() + r * kPatch * g.tw;
          for (int64_t j = 0; j < g.tw; ++j) {
            const float s0 = qr[j], s1 = qr[g.tw + j], s2 = qr[2 * g.tw + j], s3 = qr[3 * g.tw + j];
            const float s4 = qr[4 * g.tw + j], s5 = qr[5 * g.tw + j];
            const float p12 = s1 + s2, m12 = s1 - s2, p34 = s3 + s4, m34 = s3 - s4;
            const float o[kTile] = {s0 + p12 + p34, m12 + 2 * m34, p12 + 4 * p34, m12 + 8 * m34 + s5};
            const int64_t col = j * kTile, n = std::min<int64_t>(kTile, g.w - col);
            for (int64_t e = 0; e < n; ++e) out[col + e] = o[e] + b0;
          }
        }
      }
    }
  });
}

// e_a = Σ_r Aᵀ[r][a]·y_r, the output transform's transpose, for four values: e_a written at e[a · stride].
inline void output_adjoint(float y0, float y1, float y2, float y3, float* e, int64_t stride) {
  const float p02 = y0 + y2, p13 = y1 + y3;
  e[0] = y0;
  e[stride] = p02 + p13;
  e[2 * stride] = p02 - p13;
  e[3 * stride] = y0 + 2 * y1 + 4 * y2 + 8 * y3;
  e[4 * stride] = y0 - 2 * y1 + 4 * y2 - 8 * y3;
  e[5 * stride] = y3;
}

// o_r = Σ_a Bᵀ[a][r]·f_a: the input transform's transpose.
inline void input_adjoint(float f0, float f1, float f2, float f3, float f4, float f5, float o[kPatch]) {
  o[0] = 4 * f0;
  o[1] = 4 * (f2 - f1 + f5) + 2 * (f4 - f3);
  o[2] = -5 * f0 - 4 * (f1 + f2) - f3 - f4;
  o[3] = f1 - f2 + 2 * (f3 - f4) - 5 * f5;
  o[4] = f0 + f1 + f2 + f3 + f4;
  o[5] = f5;
}

// E[p][k][t] = (A·dy·Aᵀ)[p] for the 4×4 output tiles of the band (zero beyond the image's edge, where
// the forward pass wrote nothing).
void adjoint_outputs(const float* dy, const Geometry& g, int64_t img, int64_t row0, int64_t row1, float* e) {
  const int64_t band_tiles = (row1 - row0) * g.tw, wpad = g.tw * kTile;
  at::parallel_for(0, g.k, 1, [&](int64_t k0, int64_t k1) {
    std::vector<float> rows(kTile * wpad), cols(kPatch * wpad);
    for (int64_t k = k0; k < k1; ++k) {
      const float* plane = dy + (img * g.k + k) * g.h * g.w;
      for (int64_t i = row0; i < row1; ++i) {
        load_rows(plane, g, i * kTile, kTile, 0, wpad, rows.data());  // the tile rows 4i .. 4i+3
        const float *y0 = rows.data(), *y1 = y0 + wpad, *y2 = y1 + wpad, *y3 = y2 + wpad;
        for (int64_t x = 0; x < wpad; ++x) output_adjoint(y0[x], y1[x], y2[x], y3[x], cols.data() + x, wpad);
        const int64_t t0 = (i - row0) * g.tw;
        for (int a = 0; a < kPatch; ++a) {
          float* out = e + (a * kPatch * g.k + k) * band_tiles + t0;
          const float* ca = cols.data() + a * wpad;
          for (int64_t j = 0; j < g.tw; ++j) {
            const float* d = ca + j * kTile;
            output_adjoint(d[0], d[1], d[2], d[3], out + j, g.k * band_tiles);
          }
        }
      }
    }
  });
}

// dx += B·F·Bᵀ of each tile of the band, over the tile's 6×6 input patch (patches overlap by two rows
// and columns; what falls on the padding is dropped). One channel per task: no two tasks write a plane.
void adjoint_inputs(const float* f, const Geometry& g, int64_t img, int64_t row0, int64_t row1, float* dx) {
  const int64_t band_tiles = (row1 - row0) * g.tw, wp = g.tw * kTile + 2;
  at::parallel_for(0, g.c, 1, [&](int64_t c0, int64_t c1) {
    std::vector<float> q(kPatch * kPatch * g.tw), acc(kPatch * wp);  // q[r][b][j]
    for (int64_t c = c0; c < c1; ++c) {
      float* plane = dx + (img * g.c + c) * g.h * g.w;
      for (int64_t i = row0; i < row1; ++i) {
        const int64_t t0 = (i - row0) * g.tw;
        for (int b = 0; b < kPatch; ++b) {
          const float* s[kPatch];
          for (int a = 0; a < kPatch; ++a) s[a] = f + ((a * kPatch + b) * g.c + c) * band_tiles + t0;
          for (int64_t j = 0; j < g.tw; ++j) {
            float o[kPatch];
            input_adjoint(s[0][j], s[1][j], s[2][j], s[3][j], s[4][j], s[5][j], o);
            for (int r = 0; r < kPatch; ++r) q[(r * kPatch + b) * g.tw + j] = o[r];
          }
        }
        std::fill(acc.begin(), acc.end(), 0.f);
        for (int r = 0; r < kPatch; ++r) {
          const float* qr = q.data() + r * kPatch * g.tw;
          float* ar = acc.data() + r * wp;
          for (int64_t j = 0; j < g.tw; ++j) {
            float o[kPatch];
            input_adjoint(qr[j], qr[g.tw + j], qr[2 * g.tw + j], qr[3 * g.tw + j], qr[4 * g.tw + j],
                          qr[5 * g.tw + j], o);
            for (int e = 0; e < kPatch; ++e) ar[j * kTile + e] += o[e];
          }
        }
        for (int r = 0; r < kPatch; ++r) {
          const int64_t y = i * kTile - 1 + r;
          if (y < 0 || y >= g.h) continue;
          float* out = plane + y * g.w;
          const float* ar = acc.data() + r * wp + 1;
          for (int64_t x = 0; x < g.w; ++x) out[x] += ar[x];
        }
      }
    }
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

at::Tensor winograd_conv3x3(const at::Tensor& input, const at::Tensor& u, const at::Tensor& bias) {
  check_operands(input, u, u.size(2), "winograd_conv3x3");
  const at::Tensor x = input.contiguous(), uc = u.contiguous();
  const Geometry g = geometry(x, uc.size(2), uc.size(1));
  const at::Tensor b = bias.defined() ? bias.to(at::kFloat).contiguous() : bias;
  if (b.defined() && b.numel() != g.k) throw std::invalid_argument("winograd_conv3x3: bias must have K values");
  at::Tensor y = at::empty({g.n, g.k, g.h, g.w}, x.options());
  for_each_band(g, [&](int64_t img, int64_t row0, int64_t row1, int64_t tiles) {
    at::Tensor v = at::empty({kPoints, g.c, tiles}, x.options());
    transform_inputs(x.data_ptr<float>(), g, img, row0, row1, v.data_ptr<float>());
    at::Tensor m = at::empty({kPoints, g.k, tiles}, x.options());
    batched_products(uc, v, m);  // [36, K, tiles]: the 36 products
    transform_outputs(m.data_ptr<float>(), b.defined() ? b.data_ptr<float>() : nullptr, g, img, row0, row1,
                      y.data_ptr<float>());
  });
  return y;
}

at::Tensor winograd_conv3x3_input_gradient(const at::Tensor& grad, const at::Tensor& u) {
  check_operands(grad, u, u.size(1), "winograd_conv3x3_input_gradient");
  const at::Tensor dy = grad.contiguous(), uc = u.contiguous();
  const Geometry g = geometry(dy, uc.size(2), uc.size(1));
  at::Tensor dx = at::zeros({g.n, g.c, g.h, g.w}, dy.options());
  const at::Tensor ut = uc.transpose(1, 2);  // [36, C, K], a view: the matmul reads it transposed
  for_each_band(g, [&](int64_t img, int64_t row0, int64_t row1, int64_t tiles) {
    at::Tensor e = at::empty({kPoints, g.k, tiles}, dy.options());
    adjoint_outputs(dy.data_ptr<float>(), g, img, row0, row1, e.data_ptr<float>());
    at::Tensor f = at::empty({kPoints, g.c, tiles}, dy.options());
    batched_products(ut, e, f);  // [36, C, tiles]
    adjoint_inputs(f.data_ptr<float>(), g, img, row0, row1, dx.data_ptr<float>());
  });
  return dx;
}

}  // namespace stylize
