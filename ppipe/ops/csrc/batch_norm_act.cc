// Training-mode batch normalization fused with the activation that follows it, NCHW, float32.
//
// Why not oneDNN here: for plain NCHW tensors oneDNN's batch normalization (`ncsp_bnorm`) took ~30% of a
// MobileNetV3 training step, and a separate activation adds a write and a read of the whole tensor each way.
// Both are memory-bound, so this kernel works one channel at a time (threads split the channels), which keeps
// a channel's values in cache between its passes, and applies the activation in the same pass:
//   forward:  y = act(x * a + b), a = gamma / sqrt(var + eps), b = beta - mean * a   (x read twice, y written)
//   backward: g = dy * act'(x * a + b) recomputed from x (the pre-activation is never stored), then
//             dx = a * (g - mean(g) - xhat * mean(g * xhat)), dgamma = sum(g * xhat), dbeta = sum(g).
// Mean and variance are the batch's (variance biased, divided by N*H*W, as Paddle's CPU kernel), returned for
// the caller's running statistics. Row sums run in float (vectorized), across rows in double.

#include <omp.h>

#include <cmath>
#include <vector>

#include "paddle/extension.h"

namespace {

// Activation codes, shared with ppipe/ops/onednn.py (_FUSABLE_ACTIVATIONS).
enum Act : int { kIdentity = -1, kRelu = 0, kHardswish = 1, kSwish = 2, kRelu6 = 3 };

#define PPIPE_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

PPIPE_SIMD_CLONES float row_sum(const float* x, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}

PPIPE_SIMD_CLONES float row_squared_deviation(const float* x, int64_t n, float mean) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    float d = x[i] - mean;
    s += d * d;
  }
  return s;
}

// The activation and its derivative at the pre-activation z. Comparisons, not fmin/fmax: GCC vectorizes
// those only under -ffast-math (NaN rules), and a scalar call per element made the fused kernel slower than
// two separate oneDNN passes.
inline float clamp(float v, float lo, float hi) {
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

inline float activate(int act, float z) {
  switch (act) {
    case kRelu: return z > 0.f ? z : 0.f;
    case kHardswish: return z * clamp(z + 3.f, 0.f, 6.f) * (1.f / 6.f);
    case kSwish: return z / (1.f + std::exp(-z));
    case kRelu6: return clamp(z, 0.f, 6.f);
    default: return z;
  }
}

// Paddle's gradient conventions at the kinks: ReLU passes where z > 0; Hardswish is 0 below -3, 1 from 3 on,
// (2z + 3) / 6 between; ReLU6 passes where 0 < z < 6.
inline float derivative(int act, float z) {
  switch (act) {
    case kRelu: return z > 0.f ? 1.f : 0.f;
    case kHardswish: {
      float mid = (2.f * z + 3.f) * (1.f / 6.f);
      return z < -3.f ? 0.f : (z < 3.f ? mid : 1.f);
    }
    case kSwish: {
      float s = 1.f / (1.f + std::exp(-z));
      return s + z * s * (1.f - s);
    }
    case kRelu6: return (z > 0.f && z < 6.f) ? 1.f : 0.f;
    default: return 1.f;
  }
}

template <int ACT>
PPIPE_SIMD_CLONES void forward_row(const float* x, float* y, int64_t n, float a, float b) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = activate(ACT, x[i] * a + b);
}

// Sums of g and g * (x - mean) over one row, g = dy * act'(x * a + b).
template <int ACT>
PPIPE_SIMD_CLONES void backward_sums_row(const float* x, const float* dy, int64_t n, float a, float b, float mean,
                                         float* sum_g, float* sum_gx) {
  float sg = 0.f, sgx = 0.f;
#pragma omp simd reduction(+ : sg, sgx)
  for (int64_t i = 0; i < n; ++i) {
    float g = ACT == kIdentity ? dy[i] : dy[i] * derivative(ACT, x[i] * a + b);
    sg += g;
    sgx += g * (x[i] - mean);
  }
  *sum_g = sg;
  *sum_gx = sgx;
}

// dx = a * g + k1 * x + k0 (the closed form above, per channel constants folded).
template <int ACT>
PPIPE_SIMD_CLONES void backward_dx_row(const float* x, const float* dy, float* dx, int64_t n, float a, float b,
                                       float k1, float k0) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float g = ACT == kIdentity ? dy[i] : dy[i] * derivative(ACT, x[i] * a + b);
    dx[i] = a * g + k1 * x[i] + k0;
  }
}

struct Shape {
  int64_t n, c, hw;
};

Shape shape_of(const paddle::Tensor& x) {
  auto s = x.shape();
  PD_CHECK(s.size() == 4, "ppipe_batch_norm_act: input must be NCHW (4-D), got ", s.size(), " dims");
  PD_CHECK(s[0] * s[2] * s[3] > 0, "ppipe_batch_norm_act: empty batch");
  return {s[0], s[1], s[2] * s[3]};
}

void check_channels(const paddle::Tensor& t, int64_t c, const char* what) {
  PD_CHECK(t.numel() == c && t.dtype() == paddle::DataType::FLOAT32, "ppipe_batch_norm_act: ", what, " has ",
           t.numel(), " values, expected ", c, " float32");
}

paddle::Tensor contiguous(const paddle::Tensor& t) { return t.is_contiguous() ? t : t.contiguous(); }

// Below this many values (4M: 16 MB) a tensor is normalized by the calling thread alone. Measured on 2 cores:
// the quickstart's steps went erratic (45-370 ms instead of ~30) with every BatchNorm on the OpenMP team, and
// MobileNetV3-Large trains faster (~25-28 img/s against ~23) with this threshold than with 64K or 1M values;
// the kernel is memory-bound, and waking the team cost more than the second core gave (that core is often
// still held by the GEMM threads of Paddle's previous operator, which wait spinning).
constexpr int64_t kParallelMin = 1 << 22;

template <int ACT>
void forward_channels(const float* x, float* y, const float* gamma, const float* beta, float* mean_out,
                      float* var_out, Shape s, float eps) {
  const int64_t count = s.n * s.hw;
#pragma omp parallel for schedule(static) if (s.n * s.c * s.hw >= kParallelMin)
  for (int64_t c = 0; c < s.c; ++c) {
    double sum = 0.0;
    for (int64_t i = 0; i < s.n; ++i) sum += row_sum(x + (i * s.c + c) * s.hw, s.hw);
    const float mean = static_cast<float>(sum / count);
    double sq = 0.0;
    for (int64_t i = 0; i < s.n; ++i) sq += row_squared_deviation(x + (i * s.c + c) * s.hw, s.hw, mean);
    const float var = static_cast<float>(sq / count);
    const float a = gamma[c] / std::sqrt(var + eps);
    const float b = beta[c] - mean * a;
    for (int64_t i = 0; i < s.n; ++i) {
      const int64_t off = (i * s.c + c) * s.hw;
      forward_row<ACT>(x + off, y + off, s.hw, a, b);
    }
    mean_out[c] = mean;
    var_out[c] = var;
  }
}

template <int ACT>
void backward_channels(const float* x, const float* dy, float* dx, const float* gamma, const float* beta,
                       const float* mean_in, const float* var_in, float* dgamma, float* dbeta, Shape s, float eps) {
  const double count = static_cast<double>(s.n * s.hw);
#pragma omp parallel for schedule(static) if (s.n * s.c * s.hw >= kParallelMin)
  for (int64_t c = 0; c < s.c; ++c) {
    const float mean = mean_in[c];
    const float inv_std = 1.f / std::sqrt(var_in[c] + eps);
    const float a = gamma[c] * inv_std;
    const float b = beta[c] - mean * a;
    double sum_g = 0.0, sum_gx = 0.0;
    for (int64_t i = 0; i < s.n; ++i) {
      const int64_t off = (i * s.c + c) * s.hw;
      float sg, sgx;
      backward_sums_row<ACT>(x + off, dy + off, s.hw, a, b, mean, &sg, &sgx);
      sum_g += sg;
      sum_gx += sgx;
    }
    dbeta[c] = static_cast<float>(sum_g);
    dgamma[c] = static_cast<float>(sum_gx * inv_std);
    // dx = a * (g - sum_g / M - (x - mean) * inv_std^2 * sum_gx / M)
    const double proj = sum_gx / count * static_cast<double>(inv_std) * inv_std;
    const float k1 = static_cast<float>(-a * proj);
    const float k0 = static_cast<float>(-a * (sum_g / count) + a * mean * proj);
    for (int64_t i = 0; i < s.n; ++i) {
      const int64_t off = (i * s.c + c) * s.hw;
      backward_dx_row<ACT>(x + off, dy + off, dx + off, s.hw, a, b, k1, k0);
    }
  }
}

#define PPIPE_DISPATCH_ACT(act, fn, ...)                           \
  switch (act) {                                                   \
    case kIdentity: fn<kIdentity>(__VA_ARGS__); break;             \
    case kRelu: fn<kRelu>(__VA_ARGS__); break;                     \
    case kHardswish: fn<kHardswish>(__VA_ARGS__); break;           \
    case kSwish: fn<kSwish>(__VA_ARGS__); break;                   \
    case kRelu6: fn<kRelu6>(__VA_ARGS__); break;                   \
    default: PD_THROW("ppipe_batch_norm_act: unknown activation code ", act); \
  }

std::vector<paddle::Tensor> BatchNormActForward(const paddle::Tensor& x_in, const paddle::Tensor& scale,
                                                const paddle::Tensor& shift, float epsilon, int act) {
  PD_CHECK(x_in.is_cpu() && x_in.dtype() == paddle::DataType::FLOAT32,
           "ppipe_batch_norm_act: float32 CPU tensors only");
  auto x = contiguous(x_in);
  Shape s = shape_of(x);
  check_channels(scale, s.c, "scale");
  check_channels(shift, s.c, "shift");
  auto y = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto mean = paddle::empty({s.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto var = paddle::empty({s.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto sc = contiguous(scale), sh = contiguous(shift);
  PPIPE_DISPATCH_ACT(act, forward_channels, x.data<float>(), y.data<float>(), sc.data<float>(), sh.data<float>(),
                     mean.data<float>(), var.data<float>(), s, epsilon);
  return {y, mean, var};
}

std::vector<paddle::Tensor> BatchNormActBackward(const paddle::Tensor& x_in, const paddle::Tensor& scale,
                                                 const paddle::Tensor& shift, const paddle::Tensor& mean,
                                                 const paddle::Tensor& var, const paddle::Tensor& dy_in,
                                                 float epsilon, int act) {
  auto x = contiguous(x_in);
  auto dy = contiguous(dy_in);
  Shape s = shape_of(x);
  auto dx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto dscale = paddle::empty({s.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto dshift = paddle::empty({s.c}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto sc = contiguous(scale), sh = contiguous(shift);
  PPIPE_DISPATCH_ACT(act, backward_channels, x.data<float>(), dy.data<float>(), dx.data<float>(), sc.data<float>(),
                     sh.data<float>(), mean.data<float>(), var.data<float>(), dscale.data<float>(),
                     dshift.data<float>(), s, epsilon);
  return {dx, dscale, dshift};
}

std::vector<std::vector<int64_t>> BatchNormActInferShape(const std::vector<int64_t>& x,
                                                         const std::vector<int64_t>& scale,
                                                         const std::vector<int64_t>& shift, float epsilon, int act) {
  return {x, {x.size() > 1 ? x[1] : -1}, {x.size() > 1 ? x[1] : -1}};
}

std::vector<paddle::DataType> BatchNormActInferDtype(const paddle::DataType& x, const paddle::DataType& scale,
                                                     const paddle::DataType& shift) {
  return {x, x, x};
}

}  // namespace

PD_BUILD_OP(ppipe_batch_norm_act)
    .Inputs({"X", "Scale", "Shift"})
    .Outputs({"Y", "Mean", "Variance"})
    .Attrs({"epsilon: float", "act: int"})
    .SetKernelFn(PD_KERNEL(BatchNormActForward))
    .SetInferShapeFn(PD_INFER_SHAPE(BatchNormActInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(BatchNormActInferDtype));

PD_BUILD_GRAD_OP(ppipe_batch_norm_act)
    .Inputs({"X", "Scale", "Shift", "Mean", "Variance", paddle::Grad("Y")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Scale"), paddle::Grad("Shift")})
    .Attrs({"epsilon: float", "act: int"})
    .SetKernelFn(PD_KERNEL(BatchNormActBackward));
