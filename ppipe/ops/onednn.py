"""ppipe's CPU training operators: build, load, and switch a model's layers onto them.

Paddle's eager CPU `conv2d` (forward and both gradients) runs im2col plus a single-threaded GEMM per sample,
and its BatchNorm and activations are single-threaded loops; oneDNN, which Paddle ships for its inference
predictor but never selects in eager mode, runs the same convolutions several times faster (see
benchmarks/README.md). `csrc/` holds Paddle custom operators: oneDNN convolutions and activations
(onednn_ops.cc), ppipe's depthwise weight gradient where oneDNN has no JIT kernel (depthwise.cc), and a
BatchNorm fused with the activation that follows it (batch_norm_act.cc). They are compiled on first use (about
20 s with g++) into a cache keyed by the sources, Paddle's version and the headers, under a file lock so that
Ray workers starting together build them once.

Where they cannot be built (no C++ compiler, no oneDNN headers) training falls back to Paddle's kernels with one
warning that says why: correctness never depends on them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import sys
import warnings
from pathlib import Path

import paddle

log = logging.getLogger(__name__)

# Compiled together into one operator module: oneDNN's convolutions and activations, and ppipe's own kernels
# (depthwise weight gradient, fused BatchNorm + activation; OpenMP, on the GNU OpenMP runtime Paddle's oneDNN
# uses, so they share its threads).
_CSRC = Path(__file__).parent / "csrc"
_SOURCES = (_CSRC / "onednn_ops.cc", _CSRC / "depthwise.cc", _CSRC / "batch_norm_act.cc")
_HEADERS = (_CSRC / "depthwise.h",)


class OneDNNUnavailable(RuntimeError):
    """The oneDNN operator cannot be built or loaded here (the message says why)."""


def onednn_include_dir() -> Path:
    """oneDNN's C++ headers: `PPIPE_ONEDNN_INCLUDE`, else the `onednn-devel` wheel's (installed under the
    environment's `include/`). Paddle's wheel ships oneDNN's library but not these headers."""
    candidates = [os.environ.get("PPIPE_ONEDNN_INCLUDE"), os.path.join(sys.prefix, "include"),
                  os.path.join(sys.base_prefix, "include")]
    for c in candidates:
        if c and (Path(c) / "oneapi" / "dnnl" / "dnnl.hpp").is_file():
            return Path(c)
    raise OneDNNUnavailable("oneDNN headers not found (looked for oneapi/dnnl/dnnl.hpp under "
                            f"{[c for c in candidates if c]}); install `onednn-devel` or set PPIPE_ONEDNN_INCLUDE")


def _cache_root() -> Path:
    base = os.environ.get("PPIPE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "ppipe")
    return Path(base) / "ops"


_loaded = None  # the operator module once loaded: a process can register a custom-op library only once
_load_error: OneDNNUnavailable | None = None


def load_extension():
    """The compiled operator module (built on first use, then loaded from the cache); the same module for the
    rest of the process. Raises OneDNNUnavailable (the same reason every time) when it cannot be built."""
    global _loaded, _load_error
    if _loaded is None and _load_error is None:
        try:
            _loaded = _build_and_load()
        except OneDNNUnavailable as exc:
            _load_error = exc
    if _load_error is not None:
        raise _load_error
    return _loaded


def _build_and_load():
    import shutil

    from filelock import FileLock

    if shutil.which(os.environ.get("CXX", "g++")) is None and shutil.which("c++") is None:
        raise OneDNNUnavailable("no C++ compiler (g++/c++) on PATH to build ppipe's oneDNN operator")
    include = onednn_include_dir()
    paddle_dir = Path(paddle.__file__).parent
    libdnnl = paddle_dir / "libs" / "libdnnl.so.3"
    if not libdnnl.is_file():
        raise OneDNNUnavailable(f"Paddle's oneDNN library not found at {libdnnl}")
    digest = hashlib.sha256()
    for source in _SOURCES + _HEADERS:
        digest.update(source.read_bytes())
    digest.update(paddle.__version__.encode())
    # Paddle's build records the sources' paths: two checkouts sharing the cache would rebuild each other's
    # operator on every switch (30-40 s of g++ inside a Ray worker, long enough to time out its peers).
    digest.update(str(_SOURCES[0].parent.resolve()).encode())
    digest.update((include / "oneapi" / "dnnl" / "dnnl_version.h").read_bytes())
    key = digest.hexdigest()[:16]
    name = f"ppipe_onednn_conv_{key}"
    build_dir = _cache_root() / key
    build_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(build_dir) + ".lock"):
        # Paddle's `load` rebuilds only what changed (a no-op build, ~2 s, once the cache is warm), then
        # imports the generated module; the lock keeps concurrent workers from building over each other.
        from paddle.utils.cpp_extension import load

        log.info("loading ppipe's oneDNN convolution operator from %s (built on first use)", build_dir)
        try:
            with _quiet_build():
                return load(name=name, sources=[str(s) for s in _SOURCES], build_directory=str(build_dir),
                            extra_include_paths=[str(include)],
                            extra_ldflags=[f"-L{libdnnl.parent}", "-l:libdnnl.so.3", "-fopenmp"],
                            extra_cxx_cflags=["-O3", "-std=c++17", "-fopenmp"], verbose=False)
        except Exception as exc:  # compiler errors arrive as RuntimeError with the command's output
            raise OneDNNUnavailable(f"building ppipe's oneDNN operator failed: {exc}") from exc


@contextlib.contextmanager
def _quiet_build():
    """Paddle's builder prints to stdout (which carries `--json` documents) and logs setuptools' progress at
    INFO on every load; keep stdout clean and only warnings and errors in the log."""
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No ccache found")
            yield
    finally:
        logging.disable(previous)


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


_POINTWISE_ENV = "PPIPE_POINTWISE_CONV"


@functools.cache
def pointwise_convolutions_go_to_onednn() -> bool:
    """Whether 1x1 convolutions run on oneDNN too: on every CPU but Intel's, unless PPIPE_POINTWISE_CONV says
    `onednn` or `paddle`.

    A pointwise convolution is one GEMM per image in Paddle's kernel (no im2col), and that GEMM is Intel MKL
    (Paddle's CPU wheel ships libmklml). On Intel CPUs it beats oneDNN's convolution, whose blocked layouts add
    two activation reorders (measured 0.6-0.8x on a Xeon). MKL takes its fast code paths only on Intel CPUs:
    on an AMD EPYC with AVX-512, Paddle's 2048x2048 matmul reached 70 GFLOP/s where numpy's OpenBLAS reached
    187, and moving ResNet50's 1x1 convolutions to oneDNN (a JIT that targets the instruction set, not the
    vendor) made its training step 1.77x faster, MobileNetV3-Large's 1.37x (benchmarks/README.md).
    """
    choice = os.environ.get(_POINTWISE_ENV, "").strip().lower()
    if choice in ("onednn", "paddle"):
        return choice == "onednn"
    if choice:
        raise ValueError(f"{_POINTWISE_ENV}={choice!r}: expected 'onednn' or 'paddle' (or unset: by CPU vendor)")
    return cpu_vendor() not in ("GenuineIntel", None)


@functools.cache
def cpu_vendor() -> str | None:
    """The x86 CPU vendor string (GenuineIntel, AuthenticAMD, ...) from /proc/cpuinfo, read once; None where
    unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def convolution_goes_to_onednn(layer: paddle.nn.Conv2D) -> bool:
    """Whether `use_onednn_kernels` switches this Conv2D: where oneDNN measured faster and the op applies."""
    if layer._data_format != "NCHW" or layer.weight.dtype != paddle.float32 or _explicit_pads(layer) is None:
        return False
    if layer._groups == 1 and list(layer._kernel_size) == [1, 1]:
        return pointwise_convolutions_go_to_onednn()
    if layer._groups == 1 and layer._in_channels < 8:
        # Stems on the input image: oneDNN falls back to a GEMM-based kernel for 3 input channels, and the
        # image needs no gradient, which Paddle's kernel skips and the custom operator cannot (measured
        # 0.7-1.0x).
        return False
    return True


class OneDNNConv2D(paddle.nn.Conv2D):
    """A Conv2D whose forward runs ppipe's oneDNN operator (same parameters, same state dict)."""

    def forward(self, x):
        strides, pads, dilations, groups = self._ppipe_geometry
        y = load_extension().onednn_conv2d(x, self.weight, strides, pads, dilations, groups)
        if self.bias is not None:
            y = y + self.bias.reshape([1, -1, 1, 1])
        return y


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
    activation a layer declares follows it (`bn_act_pairs`). Returns how many layers of each kind were switched
    (`batch_norm` includes the `fused_batch_norm_activation` ones; their activations are not in `activation`).

    The class of each switched layer changes (so copies of the model keep it); parameters and buffers do not,
    so checkpoints and exports are unaffected. Raises OneDNNUnavailable when the operators cannot be built.
    """
    load_extension()
    fused = _fuse_batch_norm_activations(model)
    counts = {"conv": 0, "batch_norm": fused, "activation": 0, "fused_batch_norm_activation": fused}
    for layer in model.sublayers(include_self=True):
        kind = type(layer)
        if kind is paddle.nn.Conv2D:
            if not convolution_goes_to_onednn(layer):
                continue
            # The operator's attributes, resolved once here rather than on every forward pass.
            layer._ppipe_geometry = ([int(v) for v in layer._stride], _explicit_pads(layer),
                                     [int(v) for v in layer._dilation], int(layer._groups))
            layer.__class__ = OneDNNConv2D
            counts["conv"] += 1
        elif kind is paddle.nn.BatchNorm2D:
            if not _batch_norm_goes_to_kernel(layer):
                continue
            layer.__class__ = FusedBatchNorm2D
            counts["batch_norm"] += 1
        elif kind in _ACTIVATIONS or kind is paddle.nn.GELU:
            layer._ppipe_eltwise = _gelu_entry(layer) if kind is paddle.nn.GELU else _ACTIVATIONS[kind]
            layer.__class__ = _switched_class(OneDNNActivation, kind, "OneDNN")
            counts["activation"] += 1
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
    pointwise = "on oneDNN" if pointwise_convolutions_go_to_onednn() else "on Paddle's MKL GEMM"
    return ("onednn kernels (" + ", ".join(f"{v} {k}" for k, v in counts.items()) + " layers; 1x1 convolutions "
            f"{pointwise}, CPU {cpu_vendor() or 'of unknown vendor'})")
