"""Records of each start of a run's worker group, in the run's storage (`RunStorage.attempts/workers`).

Counting starts, rather than "found a checkpoint at start", also counts a restart whose failure came before the
first checkpoint. The per-rank records say where each rank ran, for operators and tests.
"""

from __future__ import annotations

import json
import os
import time
import uuid

from ppipe.storage import filesystem, join, write_bytes_atomic
from ppipe.train.backend import barrier


def record_start(attempts_dir: str, rank: int) -> int:
    """Note this start of the worker group; returns how many starts came before it.

    Every rank reads the same count (the barrier orders it after rank 0's write), so all ranks report the same
    number.
    """
    fs, path = filesystem(attempts_dir)
    before = len(fs.ls(path, detail=False)) if fs.exists(path) else 0
    barrier()
    if rank == 0:
        write_bytes_atomic(join(attempts_dir, f"{time.time():.6f}-{uuid.uuid4().hex[:8]}"), b"")
    return before


def record_worker(workers_dir: str, rank: int, start: int, policy: str) -> None:
    """Where this rank of this start runs: node, process, collective endpoint, scheduling niceness and the
    training thread's CPU policy, malloc setting, and the controller's poll interval that Ray Train passed on."""
    import ray

    from ppipe.ops.host_memory import current_setting

    info = {"rank": rank, "start": start, "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
            "endpoint": os.environ.get("PADDLE_CURRENT_ENDPOINT"), "niceness": os.nice(0),
            "training_thread_policy": policy,
            "malloc": current_setting(),
            "controller_poll_interval_s": os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S")}
    write_bytes_atomic(join(workers_dir, f"start{start}-rank{rank}.json"), json.dumps(info).encode())
