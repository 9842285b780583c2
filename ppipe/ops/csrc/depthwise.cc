// Weight gradient of depthwise convolutions on plain NCHW tensors.
//
// Why: oneDNN 3.6 has a JIT depthwise weight-gradient kernel for 3x3 filters only; for MobileNetV3's and
// MixNet's 5x5 (and larger) depthwise layers it falls back to an im2col GEMM that took ~210 ms of a ~1.4 s
// MobileNetV3-Large training step (batch 32, 2 cores), besides reordering both tensors to its blocked layout.
// The gradient is a small correlation per channel (K*K dot products of an output map with a shifted input
// map), so it is computed here from Paddle's tensors as they are.
//
// Each thread takes whole channels (no write conflicts). Per image it copies the channel's input plane into a
// zero-padded buffer split by stride phases, [row % sh][col % sw][row / sh][col / sw], and the output gradient
// into a buffer with rows as long as a phase's (the extra columns zero). Tap (i, j) then reads one phase
// sub-image shifted by (i / sh, j / sw), and its gradient is ONE contiguous dot product over all output rows:
// the extra columns multiply garbage-free zeros. Late layers have 7x7 maps, where a reduction per output row
// cost more than the products.

#include "depthwise.h"

#include <omp.h>

#include <algorithm>
#include <vector>

namespace ppipe {
namespace {

__attribute__((target_clones("avx512f", "avx2", "default"))) float dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// partial[m] += a[m] * b[m]: for small maps, products accumulate element-wise over a channel's images and are
// summed once at the end, instead of one horizontal reduction per image and tap (which cost more than the
// products on 7x7 maps). Large maps use `dot`: their partial sums would not stay in the L1 cache.
__attribute__((target_clones("avx512f", "avx2", "default"))) void multiply_add(const float* a, const float* b,
                                                                               float* partial, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) partial[i] += a[i] * b[i];
}

struct Layout {
  int64_t sub_rows, sub_cols, sub_size;  // one phase sub-image (sub_size includes a row of slack at the end)
};

Layout layout_of(const DepthwiseGeometry& g) {
  const int64_t padded_h = std::max(g.h + g.pad_top, (g.oh - 1) * g.sh + g.kh);
  const int64_t padded_w = std::max(g.w + g.pad_left, (g.ow - 1) * g.sw + g.kw);
  Layout l;
  l.sub_rows = (padded_h + g.sh - 1) / g.sh;
  l.sub_cols = (padded_w + g.sw - 1) / g.sw;
  // A tap's dot product runs oh * sub_cols values from its shifted start: up to (kw - 1) / sw values past the
  // last row, kept zero.
  l.sub_size = (l.sub_rows + 1) * l.sub_cols;
  return l;
}

}  // namespace

void depthwise_weight_gradient(const float* x, const float* dy, float* dw, const DepthwiseGeometry& g) {
  const Layout l = layout_of(g);
  const int64_t taps = g.kh * g.kw;
  const int64_t length = g.oh * l.sub_cols;
  // Small problems run on the calling thread (see kParallelMin in batch_norm_act.cc).
#pragma omp parallel if (g.n * g.c * g.oh * g.ow * taps >= (1 << 18))
  {
    // Zero once: later images overwrite the same data positions and leave the padding zero.
    std::vector<float> phases(g.sh * g.sw * l.sub_size, 0.f);
    std::vector<float> grad(length, 0.f);
    const bool elementwise = taps * length * sizeof(float) <= 16 * 1024;
    std::vector<float> partial(elementwise ? taps * length : 0);
    std::vector<double> acc(taps);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < g.c; ++c) {
      std::fill(partial.begin(), partial.end(), 0.f);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t n = 0; n < g.n; ++n) {
        const float* plane = x + (n * g.c + c) * g.h * g.w;
        for (int64_t r = 0; r < g.h; ++r) {
          const int64_t pr = r + g.pad_top;
          float* rows = phases.data() + (pr % g.sh) * g.sw * l.sub_size + (pr / g.sh) * l.sub_cols;
          const float* src = plane + r * g.w;
          for (int64_t p = 0; p < g.sw; ++p) {  // padded columns p, p + sw, ... go to phase (p + pad_left) % sw
            const int64_t first = (p - g.pad_left % g.sw + g.sw) % g.sw;  // first image column in this phase
            float* dst = rows + p * l.sub_size + (first + g.pad_left) / g.sw;
            for (int64_t col = first, k = 0; col < g.w; col += g.sw, ++k) dst[k] = src[col];
          }
        }
        const float* d = dy + (n * g.c + c) * g.oh * g.ow;
        for (int64_t o = 0; o < g.oh; ++o) std::copy(d + o * g.ow, d + (o + 1) * g.ow, grad.data() + o * l.sub_cols);
        for (int64_t i = 0; i < g.kh; ++i) {
          for (int64_t j = 0; j < g.kw; ++j) {
            const float* start = phases.data() + ((i % g.sh) * g.sw + j % g.sw) * l.sub_size +
                                 (i / g.sh) * l.sub_cols + j / g.sw;
            if (elementwise) {
              multiply_add(grad.data(), start, partial.data() + (i * g.kw + j) * length, length);
            } else {
              acc[i * g.kw + j] += dot(grad.data(), start, length);
            }
          }
        }
      }
      for (int64_t t = 0; t < taps; ++t) {
        double sum = acc[t];
        if (elementwise) {
          for (int64_t m = 0; m < length; ++m) sum += partial[t * length + m];
        }
        dw[c * taps + t] = static_cast<float>(sum);
      }
    }
  }
}

}  // namespace ppipe
