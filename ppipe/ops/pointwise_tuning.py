"""Which kernel runs a 1x1 convolution of a given shape on CPU: chosen by timing both kernels on it.

A 1x1 convolution runs either on Paddle's kernel (one Intel MKL GEMM per image) or on ppipe's oneDNN operator
(blocked layouts, with activation reorders around them). Which one is faster depends on the CPU, the thread
count and the shape, and no rule by channels or map size was found: on one Xeon oneDNN/Paddle ran from 0.54x to
3.2x per layer, MobileNetV3-Large's step was 1.5-2.6x faster with every 1x1 convolution on oneDNN and
ResNet50's 0.62x (benchmarks/README.md). So, as cuDNN's benchmark mode and oneDNN's and XLA's autotuners do,
each shape met in training is timed once on both kernels (forward and the gradients training needs, a few
alternating runs, the fastest run of each counts) and the faster kernel runs that shape for the rest of the
process. Decisions are kept on disk under `PPIPE_CACHE_DIR`, per CPU model, thread count and operator build, so
that later runs and Ray's other workers take them without timing again; delete the file to measure anew.

`PPIPE_POINTWISE_CONV`: `auto` (the default) as above; `onednn` or `paddle` send every 1x1 convolution to one
kernel.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from ppipe.host import cpu_model, cpu_vendor
from ppipe.ops.extension import cache_root, sources_digest

log = logging.getLogger(__name__)

POINTWISE_ENV = "PPIPE_POINTWISE_CONV"
AUTO, ONEDNN, PADDLE = "auto", "onednn", "paddle"
KERNELS = (PADDLE, ONEDNN)

WARMUP_RUNS = 1  # per kernel, untimed: oneDNN creates its primitives on a shape's first call
TIMED_RUNS = 3  # per kernel, alternating; the fastest run counts, since other load only ever adds time
MARGIN = 0.05  # the other kernel must be this much faster to displace the untimed default: near-ties hold still
MAX_TIMED_SHAPES = 96  # per process: multi-scale training would otherwise time every layer at every scale
_STORE_VERSION = 1  # of what a stored decision means (the timing protocol above); a change starts a new file


def pointwise_mode() -> str:
    """`PPIPE_POINTWISE_CONV`: `auto` (unset: each shape timed) or a kernel every 1x1 convolution goes to."""
    choice = os.environ.get(POINTWISE_ENV, "").strip().lower() or AUTO
    if choice not in (AUTO, *KERNELS):
        raise ValueError(f"{POINTWISE_ENV}={choice!r}: expected 'auto' (the default: each shape's kernel chosen "
                         "by timing both), 'onednn' or 'paddle'")
    return choice


def untimed_kernel() -> str:
    """The kernel for a shape that is not timed (evaluation, or the process's timing budget spent): oneDNN,
    except on Intel CPUs, where Paddle's GEMM is Intel MKL on its fast code path. MKL takes that path only on
    Intel: on an AMD EPYC with AVX-512, Paddle's 2048x2048 matmul reached 70 GFLOP/s where OpenBLAS reached 187,
    and oneDNN (a JIT for the instruction set, not the vendor) made ResNet50's step 1.77x faster."""
    return PADDLE if cpu_vendor() in ("GenuineIntel", None) else ONEDNN


def math_threads() -> int:
    """The math threads this process's kernels use (`OMP_NUM_THREADS`, as Ray workers are given it, else the
    CPUs it may run on): a decision holds for one thread count."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def batch_bucket(n: int) -> int:
    """The power of two at or above the batch size: a decision holds for batches of similar size (the kernels'
    costs grow alike with it), so an epoch's smaller last batch is timed once, not once per size."""
    return 1 << max(0, int(n) - 1).bit_length()


class PointwiseShape(NamedTuple):
    """What a 1x1 convolution's speed depends on, the batch size by bucket (`batch_bucket`)."""

    in_channels: int
    out_channels: int
    height: int
    width: int
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]
    batch_bucket: int
    input_grad: bool  # Paddle's kernel skips the input's gradient where none is needed; oneDNN's operator cannot

    def key(self) -> str:
        return (f"{self.in_channels}x{self.out_channels} {self.height}x{self.width} s{self.stride[0]}x"
                f"{self.stride[1]} p{'-'.join(map(str, self.pads))} n{self.batch_bucket}"
                f"{'' if self.input_grad else ' no-dx'}")


def time_kernels(runs: Mapping[str, Callable[[], object]], timed_runs: int = TIMED_RUNS,
                 clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Seconds of each kernel's fastest run: `WARMUP_RUNS` untimed runs each, then `timed_runs` rounds that
    alternate which kernel goes first, so that load drifting during the timing hits both alike."""
    for run in runs.values():
        for _ in range(WARMUP_RUNS):
            run()
    names = list(runs)
    best = dict.fromkeys(names, math.inf)
    for r in range(timed_runs):
        for name in names if r % 2 == 0 else names[::-1]:
            start = clock()
            runs[name]()
            best[name] = min(best[name], clock() - start)
    return best


def faster_kernel(seconds: Mapping[str, float], default: str, margin: float = MARGIN) -> str:
    """The kernel with the fastest run, where it beats `default` by more than `margin`; else `default`."""
    fastest = min(seconds, key=seconds.__getitem__)
    if fastest != default and seconds[fastest] > seconds[default] * (1.0 - margin):
        return default
    return fastest


class DecisionStore:
    """Decisions kept in one JSON file for one CPU model, thread count and operator build, shared by the
    processes that train there (read on every shape the process has not decided, written under a file lock)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def get(self, shape: PointwiseShape) -> str | None:
        kernel = self._read().get(shape.key(), {}).get("kernel")
        return kernel if kernel in KERNELS else None

    def put(self, shape: PointwiseShape, kernel: str, seconds: Mapping[str, float]) -> None:
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            decisions = self._read()
            decisions[shape.key()] = {"kernel": kernel, **{f"{k}_ms": round(v * 1e3, 3) for k, v in seconds.items()}}
            document = {"cpu": cpu_model(), "threads": math_threads(), "decisions": decisions}
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(document, indent=1, sort_keys=True))
            os.replace(tmp, self.path)

    def _read(self) -> dict[str, dict]:
        try:
            decisions = json.loads(self.path.read_text()).get("decisions", {})
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("%s: unreadable (%s); timing 1x1 convolutions anew and rewriting it", self.path, exc)
            return {}
        return decisions if isinstance(decisions, dict) else {}


def default_store() -> DecisionStore:
    """The store for this machine: `PPIPE_CACHE_DIR/ops/pointwise/<key>.json`, keyed by the CPU model, the
    thread count, the operators' sources and Paddle's version."""
    digest = sources_digest()
    digest.update(f"{_STORE_VERSION}|{cpu_model()}|{math_threads()}".encode())
    return DecisionStore(cache_root() / "pointwise" / f"{digest.hexdigest()[:16]}.json")


class PointwiseTuner:
    """One process's kernel per shape: decided once (from the store, or by timing) and never revisited, so
    that noise cannot make a shape switch kernels within a run."""

    def __init__(self, store: DecisionStore | None, max_timed_shapes: int = MAX_TIMED_SHAPES):
        self.store = store
        self.max_timed_shapes = max_timed_shapes
        self.timed = 0
        self.stored = 0
        self.timing_seconds = 0.0
        self._budget_spent = False
        self._kernels: dict[PointwiseShape, str] = {}

    def known(self, shape: PointwiseShape) -> str | None:
        """The kernel decided for `shape`, if it has been."""
        return self._kernels.get(shape)

    def kernel(self, shape: PointwiseShape, runs: Callable[[], Mapping[str, Callable[[], object]]]) -> str:
        """The kernel for `shape`, deciding it on first sight: `runs()` gives each kernel's training work
        (forward and gradients) on this shape, to time."""
        kernel = self._kernels.get(shape)
        if kernel is None:
            kernel = self._decide(shape, runs)
            self._kernels[shape] = kernel
        return kernel

    def _decide(self, shape: PointwiseShape, runs) -> str:
        stored = self.store.get(shape) if self.store is not None else None
        if stored is not None:
            self.stored += 1
            return stored
        if self.timed >= self.max_timed_shapes:
            if not self._budget_spent:
                log.info("1x1 convolutions: %d shapes timed, the most this process times; further shapes take "
                         "the untimed default (%s)", self.timed, untimed_kernel())
                self._budget_spent = True
            return untimed_kernel()
        start = time.perf_counter()
        seconds = time_kernels(runs())
        self.timing_seconds += time.perf_counter() - start
        self.timed += 1
        kernel = faster_kernel(seconds, untimed_kernel())
        log.debug("1x1 convolution %s: paddle %.2f ms, onednn %.2f ms -> %s", shape.key(), seconds[PADDLE] * 1e3,
                  seconds[ONEDNN] * 1e3, kernel)
        if self.store is not None:
            try:
                self.store.put(shape, kernel, seconds)
            except OSError as exc:  # a read-only cache costs later runs the timing, not this one its decision
                log.warning("1x1 convolution decisions not kept in %s: %s", self.store.path, exc)
        return kernel

    def describe(self) -> str:
        where = f", {self.stored} from {self.store.path}" if self.store is not None else ""
        return f"{self.timed} shapes timed in {self.timing_seconds:.1f} s{where}"


_process_tuner: PointwiseTuner | None = None


def process_tuner() -> PointwiseTuner:
    """The tuner every 1x1 convolution of this process asks (created on first use, with `default_store`)."""
    global _process_tuner
    if _process_tuner is None:
        _process_tuner = PointwiseTuner(default_store())
    return _process_tuner
