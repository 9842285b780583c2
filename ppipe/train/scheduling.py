"""CPU scheduling of the embedded Ray instance: Ray's own processes yield to the training threads.

On one machine, Ray's processes (GCS, raylet, agents, Ray Train's controller and helper actors, and the
Ray threads inside each training worker) wake up hundreds of times a second from timed sleeps: every
actor's core worker checks for signals every 10 ms, gRPC pollers, timers. Each wake-up on a machine whose
cores the workers' math threads fill preempts a math thread, and its OpenMP team then waits at the next
barrier (measured with `perf sched` on 2 cores: the training thread preempted 420-650 times a second, off
its CPU 6-7% of the time; benchmarks/README.md).

Linux's SCHED_BATCH policy marks a thread as throughput work that never preempts another on wake-up: it
waits for the running thread's time slice to end. Any process may switch between SCHED_OTHER and
SCHED_BATCH, both ways, without privileges, and children inherit the policy of the thread that forks
them. So when ppipe starts the local instance it starts it at SCHED_BATCH (every Ray process, and every
worker process the raylet forks, inherits it), and each training worker puts its training thread back to
SCHED_OTHER before that thread starts its math threads, which inherit it in turn.

Only the embedded instance is touched: on a cluster, how Ray's processes are scheduled is the cluster's
configuration, not a training job's.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

log = logging.getLogger(__name__)

_POLICY_NAMES = {getattr(os, name): name for name in ("SCHED_OTHER", "SCHED_BATCH", "SCHED_IDLE", "SCHED_FIFO",
                                                    "SCHED_RR") if hasattr(os, name)}


def policy_name(pid: int = 0) -> str:
    """The scheduling policy of thread `pid` (0: the calling thread), e.g. "SCHED_OTHER"; "unknown" where the
    platform cannot say."""
    try:
        policy = os.sched_getscheduler(pid)
    except (AttributeError, OSError):
        return "unknown"
    return _POLICY_NAMES.get(policy, str(policy))


def _set_policy(policy: int) -> None:
    # pid 0 is the calling thread (Linux policies are per thread), which is what child processes inherit.
    os.sched_setscheduler(0, policy, os.sched_param(0))


@contextlib.contextmanager
def background_policy() -> Iterator[bool]:
    """Within the block, the calling thread, and every process it starts, runs at SCHED_BATCH; afterwards the
    thread is back at its own policy. Yields whether the policy was applied (not on platforms without it, nor
    for a thread whose policy is not SCHED_OTHER: a policy someone chose is left alone)."""
    if not hasattr(os, "SCHED_BATCH") or policy_name() != "SCHED_OTHER":
        yield False
        return
    try:
        _set_policy(os.SCHED_BATCH)
    except OSError as exc:  # a seccomp profile may refuse sched_setscheduler: start Ray as it is
        log.info("Ray's processes keep the default CPU policy (SCHED_BATCH refused: %s)", exc)
        yield False
        return
    try:
        yield True
    finally:
        _set_policy(os.SCHED_OTHER)


def foreground_training_thread() -> str:
    """Put the calling thread (a worker's training thread) back to SCHED_OTHER if it inherited SCHED_BATCH from
    the embedded Ray instance, before it starts its math threads. Returns the thread's policy afterwards."""
    if hasattr(os, "SCHED_BATCH") and policy_name() == "SCHED_BATCH":
        try:
            _set_policy(os.SCHED_OTHER)
        except OSError as exc:
            log.warning("the training thread stays at SCHED_BATCH (SCHED_OTHER refused: %s)", exc)
    return policy_name()
