"""Build and load ppipe's compiled CPU training operators (`csrc/`), once per process.

They are Paddle custom operators compiled on first use (about 20 s with g++) into a cache keyed by the sources,
Paddle's version and the oneDNN headers, under a file lock so that Ray workers starting together build them
once. Where they cannot be built (no C++ compiler, no oneDNN headers) `load_extension` raises OneDNNUnavailable,
the same reason every time, and training falls back to Paddle's kernels (`ppipe.ops.onednn`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import warnings
from pathlib import Path

import paddle

from ppipe.host import cache_dir

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


def cache_root() -> Path:
    """Where ppipe's operators and what is measured about them are kept: `PPIPE_CACHE_DIR/ops`."""
    return cache_dir("ops")


def sources_digest() -> hashlib._Hash:
    """A hash of the operators' sources and Paddle's version: what a build, or a measurement of the built
    operators, depends on."""
    digest = hashlib.sha256()
    for source in _SOURCES + _HEADERS:
        digest.update(source.read_bytes())
    digest.update(paddle.__version__.encode())
    return digest


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
    digest = sources_digest()
    # Paddle's build records the sources' paths: two checkouts sharing the cache would rebuild each other's
    # operator on every switch (30-40 s of g++ inside a Ray worker, long enough to time out its peers).
    digest.update(str(_SOURCES[0].parent.resolve()).encode())
    digest.update((include / "oneapi" / "dnnl" / "dnnl_version.h").read_bytes())
    key = digest.hexdigest()[:16]
    name = f"ppipe_onednn_conv_{key}"
    build_dir = cache_root() / key
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
