"""An ordered, bounded process-pool map shared by preparation (decode checks) and the reader (transforms)."""

from __future__ import annotations

import os
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from multiprocessing import get_context
from typing import Any, Callable, Iterable, Iterator


def start_method() -> str:
    """How worker processes start: $PPIPE_MP_START_METHOD, else fork on Linux, else spawn.

    fork (as PyTorch's and Paddle's DataLoaders do) needs no `if __name__ == "__main__":` guard in the calling
    script and starts instantly; fsspec/s3fs reset their event loop in a forked child. Set
    PPIPE_MP_START_METHOD=spawn or forkserver where forking the parent is unsafe.
    """
    return os.environ.get("PPIPE_MP_START_METHOD") or ("fork" if sys.platform.startswith("linux") else "spawn")


def ordered_map(fn: Callable, tasks: Iterable[tuple], workers: int, *, initializer: Callable | None = None,
                initargs: tuple = (), in_flight_per_worker: int = 4) -> Iterator[Any]:
    """fn(*task) for each task, yielded in task order.

    workers <= 0 runs in this process (after calling `initializer`); otherwise a pool of `workers` processes
    (see `start_method`) with at most `in_flight_per_worker * workers` tasks submitted ahead, so memory stays
    bounded on large inputs.
    """
    if workers <= 0:
        if initializer is not None:
            initializer(*initargs)
        for t in tasks:
            yield fn(*t)
        return
    ex = ProcessPoolExecutor(max_workers=workers, mp_context=get_context(start_method()), initializer=initializer,
                             initargs=initargs)
    try:
        it = iter(tasks)
        pending = deque(ex.submit(fn, *t) for t in islice(it, workers * in_flight_per_worker))
        while pending:
            result = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(ex.submit(fn, *nxt))
            yield result
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
