"""Evaluation spread over Ray: `Ray.num_workers` tasks each score their disjoint share of a split and return
counts; the driver adds them up. `Ray.num_workers: 0` scores the whole split in this process.

Scoring needs no collective (the workers never talk to each other), so plain Ray tasks suffice: each is sized
like a training worker (`Ray.cpus_per_worker`, its math threads as `ppipe.train.trainer.math_threads_per_worker`
decides), a failed one is retried (`Ray.max_failures`), and the scorer travels once through Ray's object store
(the weights with it), so a worker on another node needs no file of the driver's. Counts, not averages, are
returned, so the sum over ranks equals scoring everything in one process.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from ppipe.config import Config

log = logging.getLogger("ppipe.evaluation")

Counts = dict[str, np.ndarray]


class ShardScorer(Protocol):
    """Scores share `rank` of `world_size` of a split (`ppipe.data.iter_batches(rank=, world_size=)`); must be
    picklable (it is sent to the Ray workers)."""

    def __call__(self, rank: int, world_size: int) -> Counts: ...


def sum_counts(parts: list[Counts]) -> Counts:
    """The element-wise sum of every rank's counts (float64: counts below 2**53 stay exact)."""
    keys = set(parts[0])
    for part in parts[1:]:
        if set(part) != keys:
            raise ValueError(f"ranks returned different counts: {sorted(keys)} and {sorted(part)}")
    return {k: np.sum([np.asarray(p[k], np.float64) for p in parts], axis=0) for k in sorted(keys)}


def _score_share(scorer: ShardScorer, rank: int, world_size: int, use_gpu: bool) -> Counts:
    import paddle

    paddle.set_device("gpu" if use_gpu else "cpu")
    return scorer(rank, world_size)


def run_sharded(scorer: ShardScorer, cfg: Config, *, use_gpu: bool | None = None) -> Counts:
    """`scorer`'s counts over the whole split: summed over `cfg.Ray.num_workers` Ray tasks (a local Ray
    instance is started when none runs, as `ppipe train` does), or from this process when that is 0.
    `use_gpu`: None decides as training does (`Ray.use_gpu`, `Global.device` and the cluster's GPUs); False for
    scorers that run on the CPU whatever the cluster has (Paddle Inference predictors)."""
    workers = cfg.Ray.num_workers
    if workers == 0:
        return {k: np.asarray(v, np.float64) for k, v in _score_share(scorer, 0, 1, False).items()}
    import ray

    from ppipe.train.trainer import init_ray, math_threads_per_worker, resolve_use_gpu

    init_ray(cfg)
    if use_gpu is None:
        use_gpu, placement = resolve_use_gpu(cfg, ray.cluster_resources(), work="evaluating")
        log.info("%s (%d Ray workers)", placement, workers)
    threads = str(math_threads_per_worker(cfg)[0])
    task = ray.remote(_score_share).options(
        num_cpus=cfg.Ray.cpus_per_worker, num_gpus=1 if use_gpu else 0, max_retries=cfg.Ray.max_failures,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}})
    shared = ray.put(scorer)  # one copy in the object store, whatever the number of tasks
    log.debug("evaluating on %d Ray workers", workers)  # once per model or target: --verbose
    return sum_counts(ray.get([task.remote(shared, rank, workers, use_gpu) for rank in range(workers)]))
