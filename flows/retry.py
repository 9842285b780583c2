"""Which failures a flow retries: infrastructure (a lost worker, a storage timeout) yes, with backoff; a wrong
input (a bad recipe, a missing file it names) no, so its message reaches the flow run after one attempt.

Prefect calls `retry_on_infrastructure(task, task_run, state)` after a failed attempt (`retry_condition_fn`).
"""

from __future__ import annotations

from typing import Any

from ppipe.errors import UserError

# Backoff between attempts (Prefect takes the list in order); three retries span about six minutes.
RETRY_DELAYS_S = [10, 60, 300]

# Wrong input that happens to subclass OSError: retrying cannot make a missing file or a permission appear.
_DETERMINISTIC_OS_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def _ray_failures() -> tuple[type[BaseException], ...]:
    """Ray's lost-worker errors; none when Ray cannot be imported (then nothing Ray raised can reach us)."""
    try:
        from ray.exceptions import NodeDiedError, RayActorError, WorkerCrashedError
    except ImportError:  # pragma: no cover - ray is a dependency; kept for slim worker images
        return ()
    return RayActorError, WorkerCrashedError, NodeDiedError


def _chain(exc: BaseException | None) -> list[BaseException]:
    """`exc` and the exceptions it was raised from (Ray Train wraps a worker's error in its own)."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def is_infrastructure_failure(exc: BaseException | None) -> bool:
    """True for a failure of the machines or the network under a task, which a later attempt may not meet;
    False as soon as a wrong input is anywhere in the chain of causes."""
    chain = _chain(exc)
    if not chain or any(isinstance(e, (UserError, *_DETERMINISTIC_OS_ERRORS)) for e in chain):
        return False
    return any(isinstance(e, (TimeoutError, ConnectionError, OSError, *_ray_failures())) for e in chain)


def _exception_of(state: Any) -> BaseException | None:
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return data
    try:
        result = state.result(raise_on_failure=False)
    except Exception as exc:  # noqa: BLE001 - a result that cannot be read is no infrastructure failure
        return exc if is_infrastructure_failure(exc) else None
    return result if isinstance(result, BaseException) else None


def retry_on_infrastructure(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's `retry_condition_fn`: retry the attempt only when it failed for an infrastructure reason."""
    return is_infrastructure_failure(_exception_of(state))


# Options for every task whose work can meet a lost worker or a flaky store.
INFRA_RETRIES: dict[str, Any] = {"retries": len(RETRY_DELAYS_S), "retry_delay_seconds": RETRY_DELAYS_S,
                                 "retry_condition_fn": retry_on_infrastructure}
