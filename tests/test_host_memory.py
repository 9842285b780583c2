"""`keep_freed_memory`: after it, a large block freed by the process stays mapped for the next allocation
instead of going back to the OS (what makes later training steps skip page faults)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from ppipe.ops.host_memory import keep_freed_memory

# Run in a fresh interpreter: the setting is process-wide and cannot be undone.
_PROBE = textwrap.dedent("""
    import ctypes, os, sys
    from ppipe.ops.host_memory import keep_freed_memory
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    def rss():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    if sys.argv[1] == "keep":
        print(keep_freed_memory(), file=sys.stderr)
    size = 256 << 20
    p = libc.malloc(size)
    ctypes.memset(p, 1, size)  # touch every page
    before_free = rss()
    libc.free(p)
    print((before_free - rss()) / size)
""")


def _released_fraction(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.getcwd()))
    return float(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_freed_memory_stays_mapped_for_reuse():
    assert _released_fraction("default") > 0.9  # glibc hands a freed 256 MiB block back to the OS at once
    assert _released_fraction("keep") < 0.1  # kept for the next step's allocations


def test_reports_what_it_did_and_is_idempotent():
    first = keep_freed_memory()
    assert first == keep_freed_memory()
    assert first.startswith("malloc")
