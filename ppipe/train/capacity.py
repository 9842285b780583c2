"""Can the Ray cluster ever hold this run's workers? Decided before the run starts, from `Ray` settings.

Ray Train retries a worker group that does not fit forever (e.g. a recipe's 8 GPU workers on a CPU-only
machine). Without an autoscaler nothing will ever join the cluster, so such a run fails at once with an error
naming the settings and what the cluster has; with an autoscaler it waits for nodes, and says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ppipe.errors import ConfigError

log = logging.getLogger("ppipe.train")


@dataclass(frozen=True)
class Demand:
    workers: int
    gpus_per_worker: float
    cpus_per_worker: float

    def resources(self) -> dict[str, float]:
        need = {"CPU": self.workers * self.cpus_per_worker}
        if self.gpus_per_worker:
            need["GPU"] = self.workers * self.gpus_per_worker
        return need


def demand(ray_section, use_gpu: bool) -> Demand:
    """What the run's worker group asks Ray for (trainer.py: one GPU per worker with `use_gpu`, else
    `cpus_per_worker` CPUs; the in-process mode, num_workers 0, asks for nothing)."""
    workers = max(0, int(ray_section.num_workers))
    return Demand(workers=workers, gpus_per_worker=1.0 if use_gpu else 0.0,
                  cpus_per_worker=0.0 if use_gpu else float(ray_section.cpus_per_worker))


def _describe(resources: dict[str, float]) -> str:
    return ", ".join(f"{resources.get(k, 0):g} {k}" for k in ("CPU", "GPU"))


def check_capacity(ray_section, cluster_resources: dict[str, float], has_autoscaler: bool,
                   use_gpu: bool | None = None) -> str | None:
    """Raise ConfigError when the cluster can never hold the run's workers; return a waiting notice (also logged)
    when only an autoscaler can; None when they fit. `use_gpu`: the resolved choice (default `Ray.use_gpu`)."""
    want = demand(ray_section, bool(ray_section.use_gpu if use_gpu is None else use_gpu))
    need = want.resources()
    short = {k: v for k, v in need.items() if v > cluster_resources.get(k, 0.0)}
    if not want.workers or not short:
        return None
    asked = (f"Ray.num_workers: {want.workers}, Ray.use_gpu: {str(want.gpus_per_worker > 0).lower()}, "
             f"Ray.cpus_per_worker: {ray_section.cpus_per_worker:g} need {_describe(need)}; "
             f"the Ray cluster has {_describe(cluster_resources)}")
    if has_autoscaler:
        notice = f"{asked}: waiting for the autoscaler to add nodes"
        log.warning(notice)
        return notice
    raise ConfigError(f"{asked} and no autoscaler to add more. Lower Ray.num_workers or Ray.cpus_per_worker, set "
                      "Ray.use_gpu: false (or Global.device: cpu), or run on a cluster that has them")


AUTOSCALER_ENV = "PPIPE_RAY_AUTOSCALER"  # "1"/"0": say whether the cluster autoscales, where detection cannot


def has_autoscaler() -> bool:
    """Whether the connected Ray cluster has an autoscaler that can add nodes.

    Every Ray head runs a monitor that publishes `__autoscaling_status`; without an autoscaler config it watches the
    nodes through a read-only provider that names each node's type `node_<node id>`. An autoscaler (cluster
    launcher, KubeRay) names the node types of its config (`head`, `gpu-workers`, ...).
    """
    import json
    import os

    if os.environ.get(AUTOSCALER_ENV) in ("0", "1"):
        return os.environ[AUTOSCALER_ENV] == "1"
    from ray.experimental.internal_kv import _internal_kv_get, _internal_kv_initialized

    raw = _internal_kv_get(b"__autoscaling_status") if _internal_kv_initialized() else None
    report = (json.loads(raw).get("autoscaler_report") or {}) if raw else {}
    types = (report.get("node_type_mapping") or {}).items()
    return any(kind != f"node_{node}" for node, kind in types)
