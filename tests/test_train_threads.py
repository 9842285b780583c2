"""How many math threads a training worker gets: the CPUs it really has on one machine, its reservation on a
cluster, and an explicit setting over both."""

from __future__ import annotations

import os

from ppipe.config import load_config
from ppipe.train.trainer import math_threads_per_worker

QUICKSTART = os.path.join(os.path.dirname(__file__), "..", "configs", "quickstart.yaml")


def _threads(monkeypatch, cpus: int, *overrides: str) -> int:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    return math_threads_per_worker(load_config(QUICKSTART, list(overrides)))[0]


def test_one_worker_on_the_embedded_instance_uses_every_cpu(monkeypatch):
    assert _threads(monkeypatch, 2, "Ray.num_workers=1", "Ray.cpus_per_worker=1") == 2


def test_workers_share_the_machine_cpus(monkeypatch):
    assert _threads(monkeypatch, 8, "Ray.num_workers=2", "Ray.cpus_per_worker=1") == 4


def test_a_cluster_worker_uses_what_it_reserves(monkeypatch):
    assert _threads(monkeypatch, 64, "Ray.num_workers=1", "Ray.cpus_per_worker=3",
                    "Ray.address=ray://head:10001") == 3


def test_an_explicit_thread_count_wins(monkeypatch):
    assert _threads(monkeypatch, 2, "Ray.num_workers=1", "Ray.threads_per_worker=1") == 1
