"""What the machine this process runs on is: its CPU's model and vendor, read once from /proc/cpuinfo, and
where ppipe keeps what it builds and measures on it (`cache_dir`).

One owner for them: the export's measurements record the CPU model, and the 1x1-convolution kernel choice keys
its decisions by it and picks its untimed default by the vendor; the operator builds and the Paddle-Lite
converter's environment live under the one cache folder.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

__all__ = ["cache_dir", "cpu_model", "cpu_vendor"]


def cache_dir(*parts: str) -> Path:
    """`$PPIPE_CACHE_DIR/<parts...>` (default ``~/.cache/ppipe``): what ppipe builds or measures on this machine
    and can rebuild; not created here."""
    base = os.environ.get("PPIPE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "ppipe")
    return Path(base, *parts)


@functools.cache
def _cpuinfo(field: str) -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_vendor() -> str | None:
    """The x86 CPU vendor string (GenuineIntel, AuthenticAMD, ...) from /proc/cpuinfo; None where unknown."""
    return _cpuinfo("vendor_id")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what `platform` knows."""
    return _cpuinfo("model name") or platform.processor() or platform.machine() or "unknown CPU"
