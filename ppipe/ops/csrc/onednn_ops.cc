// CPU training operators through oneDNN, as Paddle custom operators: 2-D convolution and element-wise
// activations, each with its backward (batch normalization is ppipe's own kernel, batch_norm_act.cc).
//
// Why: Paddle 3.3's eager CPU conv2d (and its gradients) is im2col + a single-threaded GEMM per sample,
// ~50 GFLOP/s here where oneDNN's kernels reach ~200; eager mode never selects Paddle's own oneDNN
// kernels (that happens only in the inference predictor). Paddle ships libdnnl and its headers, so this
// file calls oneDNN directly: forward_training, backward_data and backward_weights primitives, with the
// layouts oneDNN prefers (`any`) and reorders from/to Paddle's plain NCHW / OIHW tensors.
//
// Padding is given explicitly as [top, bottom, left, right] (the Python wrapper resolves "SAME"/"VALID"
// and symmetric forms); bias is added by the caller. float32 only; other dtypes take Paddle's own kernel.

#include <dnnl.hpp>

#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "depthwise.h"
#include "paddle/extension.h"

// The headers come from the `onednn-devel` wheel (Paddle's wheel ships oneDNN's library, not its headers),
// which may be newer than Paddle's libdnnl (3.6 in Paddle 3.3). oneDNN keeps its C ABI within a major
// version, but newer headers call the multi-handle `_v2` entry points added after 3.6; with one handle
// they are exactly the older calls, so these definitions bridge the gap. When the library has them,
// ours still win inside this module (same behaviour).
extern "C" {
dnnl_status_t dnnl_memory_create_v2(dnnl_memory_t* memory, const_dnnl_memory_desc_t desc, dnnl_engine_t engine,
                                    int nhandles, void** handles) {
  if (nhandles != 1) return dnnl_unimplemented;
  return dnnl_memory_create(memory, desc, engine, handles[0]);
}
dnnl_status_t dnnl_memory_desc_query_v2(const_dnnl_memory_desc_t desc, dnnl_query_t what, int index,
                                        void* result) {
  if (what == dnnl_query_num_handles_s32) {  // dense memory: one buffer (3.6 predates the query)
    *static_cast<int*>(result) = 1;
    return dnnl_success;
  }
  if (index != 0) return dnnl_unimplemented;
  return dnnl_memory_desc_query(desc, what, result);
}
dnnl_status_t dnnl_memory_get_data_handle_v2(const_dnnl_memory_t memory, void** handle, int index) {
  if (index != 0) return dnnl_unimplemented;
  return dnnl_memory_get_data_handle(memory, handle);
}
}

namespace {

using dnnl::algorithm;
using dnnl::convolution_backward_data;
using dnnl::convolution_backward_weights;
using dnnl::convolution_forward;
using dnnl::engine;
using dnnl::memory;
using dnnl::prop_kind;
using dnnl::reorder;
using dnnl::stream;
using tag = memory::format_tag;
using dt = memory::data_type;

engine& cpu_engine() {
  static engine eng(engine::kind::cpu, 0);
  return eng;
}

struct Geometry {
  memory::dims src, weights, dst, strides, dilations, pad_l, pad_r;
  int64_t groups;
  std::string key;
  // One filter per channel and no dilation: ppipe's own weight gradient applies (depthwise.cc).
  bool plain_depthwise() const {
    return groups > 1 && groups == src[1] && weights[1] == 1 && weights[2] == 1 && dilations[0] == 0 && dilations[1] == 0;
  }
};

// Output size and the right/bottom padding oneDNN needs to reproduce floor((in + pads - extent) / s) + 1.
Geometry make_geometry(const std::vector<int64_t>& x, const std::vector<int64_t>& w, const std::vector<int>& strides,
                       const std::vector<int>& pads, const std::vector<int>& dilations, int groups) {
  PD_CHECK(x.size() == 4, "onednn_conv2d: input must be NCHW (4-D), got ", x.size(), " dims");
  PD_CHECK(w.size() == 4, "onednn_conv2d: weight must be OIHW (4-D)");
  PD_CHECK(strides.size() == 2 && dilations.size() == 2 && pads.size() == 4,
           "onednn_conv2d: strides/dilations need 2 values, paddings 4 (top, bottom, left, right)");
  PD_CHECK(groups >= 1 && x[1] == w[1] * groups, "onednn_conv2d: input channels ", x[1], " != weight in-channels ",
           w[1], " x groups ", groups);
  Geometry g;
  g.groups = groups;
  int64_t out_hw[2];
  int64_t pad_r[2];
  for (int i = 0; i < 2; ++i) {
    int64_t in = x[2 + i], k = w[2 + i], s = strides[i], d = dilations[i];
    int64_t before = pads[2 * i], after = pads[2 * i + 1];
    int64_t extent = (k - 1) * d + 1;
    out_hw[i] = (in + before + after - extent) / s + 1;
    PD_CHECK(out_hw[i] > 0, "onednn_conv2d: output would be empty");
    pad_r[i] = (out_hw[i] - 1) * s + extent - in - before;
  }
  g.src = {x[0], x[1], x[2], x[3]};
  g.dst = {x[0], w[0], out_hw[0], out_hw[1]};
  if (groups > 1) {
    g.weights = {groups, w[0] / groups, w[1], w[2], w[3]};
  } else {
    g.weights = {w[0], w[1], w[2], w[3]};
  }
  g.strides = {strides[0], strides[1]};
  g.dilations = {dilations[0] - 1, dilations[1] - 1};  // oneDNN counts the gaps, Paddle the step
  g.pad_l = {pads[0], pads[2]};
  g.pad_r = {pad_r[0], pad_r[1]};
  std::ostringstream key;
  for (auto v : x) key << v << ',';
  for (auto v : w) key << v << ',';
  key << strides[0] << ',' << strides[1] << ',' << pads[0] << ',' << pads[2] << ',' << dilations[0] << ','
      << dilations[1] << ',' << groups;
  g.key = key.str();
  return g;
}

// Primitive descriptors are costly to create (kernel selection and JIT), so one set per geometry is kept.
struct Primitives {
  convolution_forward::primitive_desc fwd_pd;
  convolution_forward fwd;
  std::unique_ptr<convolution_backward_data::primitive_desc> bwd_data_pd;
  std::unique_ptr<convolution_backward_data> bwd_data;
  std::unique_ptr<convolution_backward_weights::primitive_desc> bwd_weights_pd;
  std::unique_ptr<convolution_backward_weights> bwd_weights;
  // oneDNN has JIT depthwise weight-gradient kernels for 3x3 filters only; elsewhere it picks an im2col GEMM
  // several times slower than ppipe's direct kernel (and needs both tensors reordered).
  bool own_depthwise_weights = false;
};

std::mutex cache_mutex;
std::unordered_map<std::string, std::shared_ptr<Primitives>> cache;

memory::desc any_desc(const memory::dims& dims) { return memory::desc(dims, dt::f32, tag::any); }
memory::desc plain_activation(const memory::dims& dims) { return memory::desc(dims, dt::f32, tag::nchw); }
memory::desc plain_weights(const Geometry& g) {
  return memory::desc(g.weights, dt::f32, g.groups > 1 ? tag::goihw : tag::oihw);
}

std::shared_ptr<Primitives> forward_primitives(const Geometry& g) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto found = cache.find(g.key);
  if (found != cache.end()) return found->second;
  auto p = std::make_shared<Primitives>();
  p->fwd_pd = convolution_forward::primitive_desc(cpu_engine(), prop_kind::forward_training,
                                                  algorithm::convolution_direct, any_desc(g.src),
                                                  any_desc(g.weights), any_desc(g.dst), g.strides, g.dilations,
                                                  g.pad_l, g.pad_r);
  p->fwd = convolution_forward(p->fwd_pd);
  cache.emplace(g.key, p);
  return p;
}

std::shared_ptr<Primitives> backward_primitives(const Geometry& g) {
  auto p = forward_primitives(g);
  std::lock_guard<std::mutex> lock(cache_mutex);
  if (!p->bwd_data) {
    p->bwd_data_pd = std::make_unique<convolution_backward_data::primitive_desc>(
        cpu_engine(), algorithm::convolution_direct, any_desc(g.src), any_desc(g.weights), any_desc(g.dst),
        g.strides, g.dilations, g.pad_l, g.pad_r, p->fwd_pd);
    p->bwd_data = std::make_unique<convolution_backward_data>(*p->bwd_data_pd);
    p->bwd_weights_pd = std::make_unique<convolution_backward_weights::primitive_desc>(
        cpu_engine(), algorithm::convolution_direct, any_desc(g.src), any_desc(g.weights), any_desc(g.dst),
        g.strides, g.dilations, g.pad_l, g.pad_r, p->fwd_pd);
    p->bwd_weights = std::make_unique<convolution_backward_weights>(*p->bwd_weights_pd);
    p->own_depthwise_weights =
        g.plain_depthwise() && std::string(p->bwd_weights_pd->impl_info_str()).find("jit_dw") == std::string::npos;
  }
  return p;
}

// `user` viewed in the layout `wanted`: the same memory when the layouts match, else a reordered copy.
memory as_layout(const memory& user, const memory::desc& wanted, stream& strm) {
  if (user.get_desc() == wanted) return user;
  memory converted(wanted, cpu_engine());
  reorder(user, converted).execute(strm, const_cast<memory&>(user), converted);
  return converted;
}

// A primitive's output in its own layout, copied into `user` afterwards if the layouts differ.
struct Output {
  memory user, computed;
  Output(const memory& u, const memory::desc& wanted, const engine& eng)
      : user(u), computed(u.get_desc() == wanted ? u : memory(wanted, eng)) {}
  void finish(stream& strm) {
    if (computed.get_data_handle() != user.get_data_handle()) reorder(computed, user).execute(strm, computed, user);
  }
};

paddle::Tensor contiguous(const paddle::Tensor& t) { return t.is_contiguous() ? t : t.contiguous(); }

std::vector<paddle::Tensor> ConvForward(const paddle::Tensor& x_in, const paddle::Tensor& w_in,
                                        const std::vector<int>& strides, const std::vector<int>& paddings,
                                        const std::vector<int>& dilations, int groups) {
  PD_CHECK(x_in.is_cpu() && x_in.dtype() == paddle::DataType::FLOAT32, "onednn_conv2d: float32 CPU tensors only");
  auto x = contiguous(x_in);
  auto w = contiguous(w_in);
  Geometry g = make_geometry(x.shape(), w.shape(), strides, paddings, dilations, groups);
  auto p = forward_primitives(g);
  auto out = paddle::empty({g.dst[0], g.dst[1], g.dst[2], g.dst[3]}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  stream strm(cpu_engine());
  memory src(plain_activation(g.src), cpu_engine(), const_cast<float*>(x.data<float>()));
  memory wei(plain_weights(g), cpu_engine(), const_cast<float*>(w.data<float>()));
  memory dst(plain_activation(g.dst), cpu_engine(), out.data<float>());
  memory src_m = as_layout(src, p->fwd_pd.src_desc(), strm);
  memory wei_m = as_layout(wei, p->fwd_pd.weights_desc(), strm);
  Output result(dst, p->fwd_pd.dst_desc(), cpu_engine());
  p->fwd.execute(strm, {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, wei_m}, {DNNL_ARG_DST, result.computed}});
  result.finish(strm);
  strm.wait();
  return {out};
}

std::vector<paddle::Tensor> ConvBackward(const paddle::Tensor& x_in, const paddle::Tensor& w_in,
                                         const paddle::Tensor& dout_in, const std::vector<int>& strides,
                                         const std::vector<int>& paddings, const std::vector<int>& dilations,
                                         int groups) {
  auto x = contiguous(x_in);
  auto w = contiguous(w_in);
  auto dout = contiguous(dout_in);
  Geometry g = make_geometry(x.shape(), w.shape(), strides, paddings, dilations, groups);
  auto p = backward_primitives(g);
  auto dx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto dw = paddle::empty(w.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  stream strm(cpu_engine());
  memory src(plain_activation(g.src), cpu_engine(), const_cast<float*>(x.data<float>()));
  memory wei(plain_weights(g), cpu_engine(), const_cast<float*>(w.data<float>()));
  memory ddst(plain_activation(g.dst), cpu_engine(), const_cast<float*>(dout.data<float>()));
  memory dsrc(plain_activation(g.src), cpu_engine(), dx.data<float>());
  memory dwei(plain_weights(g), cpu_engine(), dw.data<float>());

  memory ddst_for_data = as_layout(ddst, p->bwd_data_pd->diff_dst_desc(), strm);
  memory wei_m = as_layout(wei, p->bwd_data_pd->weights_desc(), strm);
  Output grad_src(dsrc, p->bwd_data_pd->diff_src_desc(), cpu_engine());
  p->bwd_data->execute(strm, {{DNNL_ARG_DIFF_DST, ddst_for_data},
                              {DNNL_ARG_WEIGHTS, wei_m},
                              {DNNL_ARG_DIFF_SRC, grad_src.computed}});
  grad_src.finish(strm);

  if (p->own_depthwise_weights) {
    strm.wait();
    ppipe::DepthwiseGeometry dg{g.src[0],      g.src[1],        g.src[2],   g.src[3],   g.dst[2],   g.dst[3],
                                g.weights[3],  g.weights[4],    g.strides[0], g.strides[1], g.pad_l[0], g.pad_l[1]};
    ppipe::depthwise_weight_gradient(x.data<float>(), dout.data<float>(), dw.data<float>(), dg);
  } else {
    memory src_m = as_layout(src, p->bwd_weights_pd->src_desc(), strm);
    memory ddst_for_weights = p->bwd_weights_pd->diff_dst_desc() == ddst_for_data.get_desc()
                                  ? ddst_for_data
                                  : as_layout(ddst, p->bwd_weights_pd->diff_dst_desc(), strm);
    Output grad_weights(dwei, p->bwd_weights_pd->diff_weights_desc(), cpu_engine());
    p->bwd_weights->execute(strm, {{DNNL_ARG_SRC, src_m},
                                   {DNNL_ARG_DIFF_DST, ddst_for_weights},
                                   {DNNL_ARG_DIFF_WEIGHTS, grad_weights.computed}});
    grad_weights.finish(strm);
  }
  strm.wait();
  return {dx, dw};
}

std::vector<std::vector<int64_t>> ConvInferShape(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                                 const std::vector<int>& strides, const std::vector<int>& paddings,
                                                 const std::vector<int>& dilations, int groups) {
  Geometry g = make_geometry(x, w, strides, paddings, dilations, groups);
  return {{g.dst[0], g.dst[1], g.dst[2], g.dst[3]}};
}

std::vector<paddle::DataType> ConvInferDtype(const paddle::DataType& x, const paddle::DataType& w) { return {x}; }


// ---- Element-wise activations (forward and backward from the input), any shape. ----

using dnnl::eltwise_backward;
using dnnl::eltwise_forward;

// The codes ppipe/ops/onednn.py passes for `alg`.
algorithm eltwise_algorithm(int code) {
  switch (code) {
    case 0: return algorithm::eltwise_relu;        // alpha: negative slope (0)
    case 1: return algorithm::eltwise_hardswish;   // x * clip(alpha x + beta, 0, 1)
    case 2: return algorithm::eltwise_swish;       // x * sigmoid(alpha x)
    case 3: return algorithm::eltwise_clip_v2;     // clip(x, alpha, beta): ReLU6
    case 4: return algorithm::eltwise_hardsigmoid; // clip(alpha x + beta, 0, 1)
    case 5: return algorithm::eltwise_gelu_erf;
    case 6: return algorithm::eltwise_gelu_tanh;
    case 7: return algorithm::eltwise_logistic;    // sigmoid
    default: break;
  }
  PD_THROW("onednn_eltwise: unknown algorithm code ", code);
}

struct EltwisePrimitives {
  eltwise_forward::primitive_desc fwd_pd;
  eltwise_forward fwd;
  std::unique_ptr<eltwise_backward::primitive_desc> bwd_pd;
  std::unique_ptr<eltwise_backward> bwd;
};

std::unordered_map<std::string, std::shared_ptr<EltwisePrimitives>> eltwise_cache;

std::shared_ptr<EltwisePrimitives> eltwise_primitives(int64_t n, int alg, float alpha, float beta, bool backward) {
  std::ostringstream key;
  key << n << ',' << alg << ',' << alpha << ',' << beta;
  std::lock_guard<std::mutex> lock(cache_mutex);
  auto& p = eltwise_cache[key.str()];
  auto md = memory::desc({n}, dt::f32, tag::a);
  if (!p) {
    p = std::make_shared<EltwisePrimitives>();
    p->fwd_pd = eltwise_forward::primitive_desc(cpu_engine(), prop_kind::forward_training, eltwise_algorithm(alg),
                                                md, md, alpha, beta);
    p->fwd = eltwise_forward(p->fwd_pd);
  }
  if (backward && !p->bwd) {
    p->bwd_pd = std::make_unique<eltwise_backward::primitive_desc>(cpu_engine(), eltwise_algorithm(alg), md, md, md,
                                                                   alpha, beta, p->fwd_pd);
    p->bwd = std::make_unique<eltwise_backward>(*p->bwd_pd);
  }
  return p;
}

std::vector<paddle::Tensor> EltwiseForward(const paddle::Tensor& x_in, int alg, float alpha, float beta) {
  PD_CHECK(x_in.is_cpu() && x_in.dtype() == paddle::DataType::FLOAT32, "onednn_eltwise: float32 CPU tensors only");
  auto x = contiguous(x_in);
  auto y = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  if (x.numel() == 0) return {y};
  auto p = eltwise_primitives(x.numel(), alg, alpha, beta, false);
  auto md = memory::desc({x.numel()}, dt::f32, tag::a);
  stream strm(cpu_engine());
  p->fwd.execute(strm, {{DNNL_ARG_SRC, memory(md, cpu_engine(), const_cast<float*>(x.data<float>()))},
                        {DNNL_ARG_DST, memory(md, cpu_engine(), y.data<float>())}});
  strm.wait();
  return {y};
}

std::vector<paddle::Tensor> EltwiseBackward(const paddle::Tensor& x_in, const paddle::Tensor& dy_in, int alg,
                                            float alpha, float beta) {
  auto x = contiguous(x_in);
  auto dy = contiguous(dy_in);
  auto dx = paddle::empty(x.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  if (x.numel() == 0) return {dx};
  auto p = eltwise_primitives(x.numel(), alg, alpha, beta, true);
  auto md = memory::desc({x.numel()}, dt::f32, tag::a);
  stream strm(cpu_engine());
  p->bwd->execute(strm, {{DNNL_ARG_SRC, memory(md, cpu_engine(), const_cast<float*>(x.data<float>()))},
                         {DNNL_ARG_DIFF_DST, memory(md, cpu_engine(), const_cast<float*>(dy.data<float>()))},
                         {DNNL_ARG_DIFF_SRC, memory(md, cpu_engine(), dx.data<float>())}});
  strm.wait();
  return {dx};
}

}  // namespace

PD_BUILD_OP(onednn_conv2d)
    .Inputs({"X", "W"})
    .Outputs({"Out"})
    .Attrs({"strides: std::vector<int>", "paddings: std::vector<int>", "dilations: std::vector<int>", "groups: int"})
    .SetKernelFn(PD_KERNEL(ConvForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ConvInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(ConvInferDtype));

PD_BUILD_GRAD_OP(onednn_conv2d)
    .Inputs({"X", "W", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W")})
    .Attrs({"strides: std::vector<int>", "paddings: std::vector<int>", "dilations: std::vector<int>", "groups: int"})
    .SetKernelFn(PD_KERNEL(ConvBackward));

PD_BUILD_OP(onednn_eltwise)
    .Inputs({"X"})
    .Outputs({"Out"})
    .Attrs({"alg: int", "alpha: float", "beta: float"})
    .SetKernelFn(PD_KERNEL(EltwiseForward));

PD_BUILD_GRAD_OP(onednn_eltwise)
    .Inputs({"X", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X")})
    .Attrs({"alg: int", "alpha: float", "beta: float"})
    .SetKernelFn(PD_KERNEL(EltwiseBackward));
