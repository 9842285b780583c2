"""What native (C++) code writes to the process's descriptors 1 and 2, passed on without its known chatter.

    from ppipe.native_output import PADDLE_PASS_SUMMARY, filtered_native_output
    with filtered_native_output(PADDLE_PASS_SUMMARY):
        predictor = paddle.inference.create_predictor(config)   # the oneDNN INT8 passes' ~30 summary lines go

Paddle Inference's oneDNN INT8 passes print a summary line per operator kind ("---    quantized 27
fused_conv2d ops") to stderr from C++, whatever `Config.disable_glog_info()` says, so Python's logging cannot
filter them. The block's descriptors point at a temporary file meanwhile; afterwards every other line is written
to stderr, and with `--verbose` (`ppipe.console.verbose()`) all of them are.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

from ppipe.console import verbose

__all__ = ["PADDLE_PASS_SUMMARY", "filtered_native_output"]

# Paddle's PrettyLogDetail lines ("---    quantized 1 fc ops", "---    squashed 27 dequantize-quantize pairs"),
# coloured with ANSI escapes when printed.
PADDLE_PASS_SUMMARY = re.compile(r"^(\x1b\[[0-9;]*m)?---\s")


@contextlib.contextmanager
def filtered_native_output(noise: re.Pattern, *, show_all: bool | None = None) -> Iterator[None]:
    """Descriptors 1 and 2 go to a temporary file while the block runs; then its lines, less those `noise`
    matches (all of them when `show_all`, default `--verbose`), go to descriptor 2, also when the block raises."""
    show_all = verbose() if show_all is None else show_all
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            kept = [line for line in sink.read().decode(errors="replace").splitlines(keepends=True)
                    if show_all or not noise.search(line)]
            if kept:
                os.write(2, "".join(kept).encode())
