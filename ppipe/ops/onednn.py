"""Switch a model's layers onto ppipe's CPU training operators (built and loaded by `ppipe.ops.extension`).

Paddle's eager CPU `conv2d` (forward and both gradients) runs im2col plus a single-threaded GEMM per sample,
and its BatchNorm and activations are single-threaded loops; oneDNN, which Paddle ships for its inference
predictor but never selects in eager mode, runs the same convolutions several times faster (see
benchmarks/README.md). `csrc/` holds Paddle custom operators: oneDNN convolutions and activations
(onednn_ops.cc), ppipe's depthwise weight gradient where oneDNN has no JIT kernel (depthwise.cc), and a
BatchNorm fused with the activation that follows it (batch_norm_act.cc). 1x1 convolutions run, shape by shape,
on whichever of Paddle's GEMM and oneDNN was timed faster (`ppipe.ops.pointwise_tuning`).

Where the operators cannot be built (no C++ compiler, no oneDNN headers) training falls back to Paddle's kernels
with one warning that says why: correctness never depends on them.
"""

from __future__ import annotations

import logging

import paddle

from ppipe.ops.extension import OneDNNUnavailable, load_extension, onednn_include_dir
from ppipe.ops.pointwise_tuning import (AUTO, KERNELS, ONEDNN, PADDLE, PointwiseShape, batch_bucket, cpu_vendor,
                                        pointwise_mode, process_tuner, untimed_kernel)

__all__ = ["OneDNNUnavailable", "accelerate_for_cpu_training", "convolution_kernel", "load_extension",
           "onednn_include_dir", "pointwise_kernels", "use_onednn_kernels"]

log = logging.getLogger(__name__)

def _explicit_pads(layer: paddle.nn.Conv2D) -> list[int] | None:
    """[top, bottom, left, right] for a layer with explicit zero padding; None for what the op does not take."""
    if layer._padding_mode != "zeros" or getattr(layer, "_padding_algorithm", "EXPLICIT") != "EXPLICIT":
        return None
    p = [int(v) for v in layer._updated_padding]
    if len(p) == 2:
        return [p[0], p[0], p[1], p[1]]
    if len(p) == 4:
        return p
    return None


def convolution_kernel(layer: paddle.nn.Conv2D) -> str | None:
    """Where `use_onednn_kernels` sends this Conv2D: `onednn`, `auto` (a 1x1 convolution whose kernel is chosen
    per shape by timing, ppipe.ops.pointwise_tuning), `paddle` (a forced 1x1 choice), or None where the
    operator does not apply or oneDNN measured slower."""
    if layer._data_format != "NCHW" or layer.weight.dtype != paddle.float32 or _explicit_pads(layer) is None:
        return None
    if layer._groups == 1 and list(layer._kernel_size) == [1, 1]:
        return pointwise_mode()
    if layer._groups == 1 and layer._in_channels < 8:
        # Stems on the input image: oneDNN falls back to a GEMM-based kernel for 3 input channels, and the
        # image needs no gradient, which Paddle's kernel skips and the custom operator cannot (measured
        # 0.7-1.0x).
        return None
    return ONEDNN


class OneDNNConv2D(paddle.nn.Conv2D):
    """A Conv2D whose forward runs ppipe's oneDNN operator (same parameters, same state dict)."""

    def forward(self, x):
        strides, pads, dilations, groups = self._ppipe_geometry
        y = load_extension().onednn_conv2d(x, self.weight, strides, pads, dilations, groups)
        if self.bias is not None:
            y = y + self.bias.reshape([1, -1, 1, 1])
        return y


class PointwiseConv2D(OneDNNConv2D):
    """A 1x1 Conv2D that runs each input shape on the kernel timed faster for it in training (Paddle's GEMM or
    ppipe's oneDNN operator, ppipe.ops.pointwise_tuning); same parameters, same state dict. Shapes met only in
    evaluation, or without gradients, run on the kernel decided for them in training, else the untimed
    default."""

    _ppipe_kernel: str | None = None  # the kernel of this layer's first training forward, for the run's log
    _ppipe_report: _PointwiseReport | None = None

    def forward(self, x):
        shape = self._ppipe_shape(x)
        if self.training and paddle.is_grad_enabled():
            kernel = process_tuner().kernel(shape, lambda: _timed_runs(self, x))
            if self._ppipe_kernel is None:
                self._ppipe_kernel = kernel
                if self._ppipe_report is not None:
                    self._ppipe_report.decided(kernel)
        else:  # evaluation: the kernel training chose for this shape, whose input then needed its gradient
            kernel = process_tuner().known(shape._replace(input_grad=True)) or untimed_kernel()
        return super().forward(x) if kernel == ONEDNN else paddle.nn.Conv2D.forward(self, x)

    def _ppipe_shape(self, x) -> PointwiseShape:
        n, _, h, w = x.shape
        strides, pads, _, _ = self._ppipe_geometry
        return PointwiseShape(self._in_channels, self._out_channels, h, w, tuple(strides), tuple(pads),
                              batch_bucket(n), not x.stop_gradient)


def _timed_runs(layer: PointwiseConv2D, x) -> dict[str, object]:
    """The work one training step gives `layer` on `x` (forward, then the gradients it needs), on each kernel,
    for timing. On detached tensors, so nothing reaches the model's graph or gradients, and with no random
    numbers drawn, so that timing changes no result."""
    strides, pads, dilations, groups = layer._ppipe_geometry
    input_grad = not x.stop_gradient
    x = x.detach()
    x.stop_gradient = not input_grad  # a leaf that needs a gradient where the layer's input does
    w = layer.weight.detach()
    w.stop_gradient = False
    wrt = [x, w] if input_grad else [w]
    n, _, h, wd = x.shape
    out = [n, layer._out_channels, (h + pads[0] + pads[1] - 1) // strides[0] + 1,
           (wd + pads[2] + pads[3] - 1) // strides[1] + 1]
    grad = paddle.ones(out, dtype=x.dtype)
    ops = load_extension()

    def paddle_kernel():
        paddle.grad([paddle.nn.functional.conv2d(x, w, stride=strides, padding=pads)], wrt, [grad])

    def onednn_kernel():
        paddle.grad([ops.onednn_conv2d(x, w, strides, pads, dilations, groups)], wrt, [grad])

    return {PADDLE: paddle_kernel, ONEDNN: onednn_kernel}


class _PointwiseReport:
    """One model's 1x1 convolutions timed per shape: logs, once every one of them has run a training step, how
    many went to each kernel."""

    def __init__(self, layers: int):
        self.layers = layers
        self.kernels = dict.fromkeys(KERNELS, 0)

    def decided(self, kernel: str) -> None:
        self.kernels[kernel] += 1
        if sum(self.kernels.values()) == self.layers:
            log.info("1x1 convolutions, each shape's kernel chosen by timing: %d on oneDNN, %d on Paddle's GEMM "
                     "(%s)", self.kernels[ONEDNN], self.kernels[PADDLE], process_tuner().describe())


def pointwise_kernels(model: paddle.nn.Layer) -> dict[str, int]:
    """How many of `model`'s 1x1 convolutions chosen by timing ran their first training step on each kernel
    (`undecided`: not run in training yet)."""
    counts = dict.fromkeys((*KERNELS, "undecided"), 0)
    for layer in model.sublayers(include_self=True):
        if isinstance(layer, PointwiseConv2D):
            counts[layer._ppipe_kernel or "undecided"] += 1
    return counts


# Activations the fused BatchNorm kernel (csrc/batch_norm_act.cc) applies itself: its code, and Paddle's
# functional form for evaluation and for dtypes the kernel does not take.
_FUSABLE_ACTIVATIONS = {
    paddle.nn.ReLU: (0, paddle.nn.functional.relu),
    paddle.nn.Hardswish: (1, paddle.nn.functional.hardswish),
    paddle.nn.Swish: (2, paddle.nn.functional.swish),
    paddle.nn.Silu: (2, paddle.nn.functional.silu),
    paddle.nn.ReLU6: (3, paddle.nn.functional.relu6),
}
_NO_ACTIVATION = (-1, None)


class FusedBatchNorm2D(paddle.nn.BatchNorm2D):
    """BatchNorm2D whose training-mode forward/backward run ppipe's fused kernel, with the activation that
    follows it in the model (`_ppipe_act`, see `use_onednn_kernels`) applied in the same pass; evaluation stays
    on Paddle's kernel followed by that activation.

    Running statistics follow Paddle's rule: running = momentum * running + (1 - momentum) * batch, with the
    biased batch variance (divided by N*H*W) as Paddle's CPU kernel does.
    """

    _ppipe_act = _NO_ACTIVATION

    def forward(self, x):
        code, activation = self._ppipe_act
        if not self.training or self._use_global_stats or x.ndim != 4 or x.dtype != paddle.float32:
            y = super().forward(x)
            return y if activation is None else activation(y)
        y, mean, var = load_extension().ppipe_batch_norm_act(x, self.weight, self.bias, float(self._epsilon), code)
        with paddle.no_grad():
            m = float(self._momentum)
            paddle.assign(self._mean * m + mean * (1.0 - m), output=self._mean)
            paddle.assign(self._variance * m + var * (1.0 - m), output=self._variance)
        return y


class ActivationInBatchNorm(paddle.nn.Layer):
    """Mixin forward for an activation layer whose BatchNorm applies it (FusedBatchNorm2D): the identity here."""

    def forward(self, x):
        return x


# Paddle activation layer -> (oneDNN algorithm code in csrc/onednn_ops.cc, alpha, beta)
_ACTIVATIONS = {
    paddle.nn.ReLU: (0, 0.0, 0.0),
    paddle.nn.Hardswish: (1, 1.0 / 6.0, 0.5),
    paddle.nn.Swish: (2, 1.0, 0.0),
    paddle.nn.Silu: (2, 1.0, 0.0),
    paddle.nn.ReLU6: (3, 0.0, 6.0),
    paddle.nn.Hardsigmoid: (4, 1.0 / 6.0, 0.5),
    paddle.nn.Sigmoid: (7, 0.0, 0.0),
}


class OneDNNActivation(paddle.nn.Layer):
    """Mixin forward for activation layers switched to oneDNN (the class keeps its Paddle base for the rest)."""

    def forward(self, x):
        if x.dtype != paddle.float32:
            return self._ppipe_paddle_forward(x)
        alg, alpha, beta = self._ppipe_eltwise
        return load_extension().onednn_eltwise(x, alg, alpha, beta)

    def _ppipe_paddle_forward(self, x):
        return super(OneDNNActivation, self).forward(x)


def _gelu_entry(layer) -> tuple[int, float, float]:
    return (6 if getattr(layer, "_approximate", False) else 5, 0.0, 0.0)


_switched_classes: dict[tuple[type, type], type] = {}


def _switched_class(mixin: type, base: type, prefix: str) -> type:
    """`mixin` over `base`, one class per pair and named in this module, so copies and pickles keep working."""
    cls = _switched_classes.get((mixin, base))
    if cls is None:
        cls = type(f"{prefix}{base.__name__}", (mixin, base), {"__module__": __name__})
        _switched_classes[(mixin, base)] = cls
        globals()[cls.__name__] = cls
    return cls


def _fuse_batch_norm_activations(model: paddle.nn.Layer) -> int:
    """Let each BatchNorm2D that a layer declares is followed directly by its activation (the layer class's
    `bn_act_pairs`, e.g. ConvBNAct's ("bn", "act")) apply that activation itself; the activation layer becomes
    the identity. Saves a write and a read of the tensor each way, and the stored pre-activation."""
    fused = 0
    for layer in model.sublayers(include_self=True):
        for bn_name, act_name in getattr(type(layer), "bn_act_pairs", ()):
            bn, act = getattr(layer, bn_name, None), getattr(layer, act_name, None)
            if type(bn) is not paddle.nn.BatchNorm2D or not _batch_norm_goes_to_kernel(bn):
                continue
            if type(act) not in _FUSABLE_ACTIVATIONS:
                continue
            bn.__class__ = FusedBatchNorm2D
            bn._ppipe_act = _FUSABLE_ACTIVATIONS[type(act)]
            act.__class__ = _switched_class(ActivationInBatchNorm, type(act), "InBatchNorm")
            fused += 1
    return fused


def _batch_norm_goes_to_kernel(layer: paddle.nn.BatchNorm2D) -> bool:
    return layer._data_format == "NCHW" and layer.weight is not None and layer.bias is not None


def use_onednn_kernels(model: paddle.nn.Layer) -> dict[str, int]:
    """Switch `model`'s layers to ppipe's CPU training operators in place: spatial/grouped Conv2D (3x3,
    depthwise, 7x7, ...) and element-wise activations (ReLU, ReLU6, Hardswish, Hardsigmoid, Swish/SiLU,
    Sigmoid, GELU) on oneDNN, BatchNorm2D (training mode) on ppipe's own kernel, which also applies the
    activation a layer declares follows it (`bn_act_pairs`); 1x1 convolutions as `PPIPE_POINTWISE_CONV` says,
    by default each shape on the kernel timed faster (`PointwiseConv2D`). Returns how many layers of each kind
    were switched (`conv`: on oneDNN; `conv_1x1_timed`: 1x1 convolutions choosing per shape; `batch_norm`
    includes the `fused_batch_norm_activation` ones; their activations are not in `activation`).

    The class of each switched layer changes (so copies of the model keep it); parameters and buffers do not,
    so checkpoints and exports are unaffected. Raises OneDNNUnavailable when the operators cannot be built.
    """
    load_extension()
    fused = _fuse_batch_norm_activations(model)
    counts = {"conv": 0, "conv_1x1_timed": 0, "batch_norm": fused, "activation": 0,
              "fused_batch_norm_activation": fused}
    timed = []
    for layer in model.sublayers(include_self=True):
        kind = type(layer)
        if kind is paddle.nn.Conv2D:
            target = convolution_kernel(layer)
            if target not in (ONEDNN, AUTO):
                continue
            # The operator's attributes, resolved once here rather than on every forward pass.
            layer._ppipe_geometry = ([int(v) for v in layer._stride], _explicit_pads(layer),
                                     [int(v) for v in layer._dilation], int(layer._groups))
            layer.__class__ = OneDNNConv2D if target == ONEDNN else PointwiseConv2D
            counts["conv" if target == ONEDNN else "conv_1x1_timed"] += 1
            if target == AUTO:
                timed.append(layer)
        elif kind is paddle.nn.BatchNorm2D:
            if not _batch_norm_goes_to_kernel(layer):
                continue
            layer.__class__ = FusedBatchNorm2D
            counts["batch_norm"] += 1
        elif kind in _ACTIVATIONS or kind is paddle.nn.GELU:
            layer._ppipe_eltwise = _gelu_entry(layer) if kind is paddle.nn.GELU else _ACTIVATIONS[kind]
            layer.__class__ = _switched_class(OneDNNActivation, kind, "OneDNN")
            counts["activation"] += 1
    report = _PointwiseReport(len(timed))
    for layer in timed:
        layer._ppipe_report = report
    return counts


def accelerate_for_cpu_training(model: paddle.nn.Layer, kernels: str) -> str:
    """Apply the configured CPU kernels (`Global.cpu_kernels`) to a training model; returns what was done.
    `onednn` (the default): ppipe's operators (`use_onednn_kernels`); `paddle`: Paddle's own kernels, as
    PaddleClas trains. The process-wide half of the CPU training path, malloc keeping freed memory
    (`host_memory.keep_freed_memory`), is applied by the training process's entry (`ppipe.train.loop`), not
    here: building a model must not change the allocator of whatever process builds it."""
    if kernels != "onednn" or paddle.get_device() != "cpu":
        return "paddle kernels"
    try:
        counts = use_onednn_kernels(model)
    except OneDNNUnavailable as exc:
        log.warning("Global.cpu_kernels=onednn: %s; training with Paddle's CPU kernels instead", exc)
        return f"paddle kernels ({exc})"
    mode = pointwise_mode()
    pointwise = {AUTO: "each shape on the kernel timed faster in its first training step",
                 ONEDNN: "on oneDNN", PADDLE: "on Paddle's MKL GEMM"}[mode]
    return ("onednn kernels (" + ", ".join(f"{v} {k}" for k, v in counts.items()) + " layers; 1x1 convolutions "
            f"{pointwise} (PPIPE_POINTWISE_CONV={mode}), CPU {cpu_vendor() or 'of unknown vendor'})")
