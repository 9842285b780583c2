"""What every benchmark prints beside its figures: the CPU it ran on, the load the machine carried, and the
median and spread of alternating rounds (a ratio from one round on a shared host says little)."""

from __future__ import annotations

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppipe import host  # noqa: E402


def cpu_model() -> str:
    """ppipe's description of the CPU (`ppipe.host.cpu_model`: model name, family/model numbers, instruction
    sets) and the CPUs this process may run on."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{host.cpu_model()}, {cpus} CPUs"


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


class LoadSampler:
    """The 1-minute load average sampled at each `sample()` (call it between rounds): its range is printed."""

    def __init__(self):
        self.samples: list[float] = []

    def sample(self) -> float:
        self.samples.append(load_average()[0])
        return self.samples[-1]

    def describe(self) -> str:
        if not self.samples:
            return "load average not sampled"
        return (f"1-min load average {min(self.samples):.1f}-{max(self.samples):.1f} "
                f"(median {statistics.median(self.samples):.1f}) over the run")


def median_and_spread(values: list[float]) -> str:
    """`median (min-max)`, the form every figure is quoted in."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
