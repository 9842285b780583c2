"""What the machine this process runs on is: its CPU's model and vendor, read once from /proc/cpuinfo, and
where ppipe keeps what it builds and measures on it (`cache_dir`).

A cloud VM's model name is often generic ("AMD EPYC", "Intel(R) Xeon(R) Processor": the same string for CPU
generations whose kernels differ), so `cpu_model` adds the family/model/stepping numbers and the instruction sets
oneDNN, OpenVINO and ONNX Runtime pick their kernels by: two hosts with one description run the same kernels.

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


CPUINFO = "/proc/cpuinfo"

# (flag in /proc/cpuinfo, name in the description): what decides which CPU kernels run. AVX-512 (or AVX2 without
# it) is the vector width, VNNI the int8 dot products (the INT8 target), BF16/AMX the bfloat16 and matrix units
_ISA = (("avx512_vnni", "VNNI"), ("avx_vnni", "VNNI"), ("avx512_bf16", "BF16"), ("amx_tile", "AMX"))


@functools.cache
def _cpuinfo_fields() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo; empty where there is none (not Linux)."""
    fields: dict[str, str] = {}
    try:
        with open(CPUINFO, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # one processor is enough: a VM's CPUs are alike
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _cpuinfo(field: str) -> str | None:
    return _cpuinfo_fields().get(field)


def cpu_vendor() -> str | None:
    """The x86 CPU vendor string (GenuineIntel, AuthenticAMD, ...) from /proc/cpuinfo; None where unknown."""
    return _cpuinfo("vendor_id")


def cpu_model() -> str:
    """The CPU's model name and, where /proc/cpuinfo has them, its family/model/stepping and kernel-deciding
    instruction sets: "AMD EPYC (family 26 model 2 stepping 1; AVX-512, VNNI, BF16)"; else what `platform`
    knows."""
    name = _cpuinfo("model name") or platform.processor() or platform.machine() or "unknown CPU"
    fields = _cpuinfo_fields()
    numbers = " ".join(f"{k} {fields[f]}" for k, f in (("family", "cpu family"), ("model", "model"),
                                                       ("stepping", "stepping")) if fields.get(f))
    flags = set(fields.get("flags", "").split())
    isa = []
    if flags:
        isa.append("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2")
        isa += dict.fromkeys(label for flag, label in _ISA if flag in flags)  # in _ISA's order, once each
    details = "; ".join(part for part in (numbers, ", ".join(isa)) if part)
    return f"{name} ({details})" if details else name
