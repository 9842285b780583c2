"""Stopping a training run on SIGINT (Ctrl-C) or SIGTERM within seconds, with its last checkpoint kept.

Ray Train's own SIGINT handler asks its controller actor to abort and waits for the answer inside the handler; a
controller blocked waiting for its workers to be placed answers only when that wait times out (20 s and more), and
on SIGTERM Ray's driver handler exits without stopping anything. Instead, while a run is under way both signals
raise KeyboardInterrupt in the main thread: the one exception Ray lets out of the `ray.get` the driver waits in
(any other is swallowed there). The trainer then stops the controller (`ppipe.train.ray_trainer`), whose worker
actors die with it, shuts down the Ray instance it started, and raises `RunInterrupted`, which names the run and
its last complete checkpoint; the CLI says how to continue and exits 128 + the signal's number (130 on SIGINT).

A worker stopped while copying a checkpoint leaves a folder Ray Train never registered, so the registered one
before it stays the checkpoint a resume continues from (`ppipe.train.runs.latest_checkpoint`).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from ppipe.train.runs import StoredCheckpoint

log = logging.getLogger("ppipe.train")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal. A KeyboardInterrupt, so that code which treats Ctrl-C as "stop" (and no
    `except Exception` on the way) does so here too."""

    def __init__(self, signum: int, run_name: str, checkpoint: StoredCheckpoint | None):
        self.signum = signum
        self.run_name = run_name
        self.checkpoint = checkpoint
        super().__init__(f"{self.signal_name}: run {run_name} stopped")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal."""
        return 128 + self.signum


@dataclass
class SignalWatch:
    """What `stop_on_signals` saw: the first stop signal received, if any."""

    active: bool  # in the main thread, the only one Python delivers signals to
    signum: int | None = None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            # Already stopping; the stop is bounded, so a second Ctrl-C need not cut the cleanup short.
            log.warning("%s: the run is already stopping (SIGKILL stops this process at once)",
                        signal.Signals(signum).name)
            return
        self.signum = signum
        log.warning("%s: stopping the run", signal.Signals(signum).name)
        raise KeyboardInterrupt

    def install(self) -> None:
        """(Re)install the handlers: `ray.init` replaces the driver's SIGTERM handler with its own."""
        if self.active:
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._handle)

    def received(self) -> int:
        """The signal that stopped the run (a KeyboardInterrupt that came otherwise counts as SIGINT)."""
        return self.signum or signal.SIGINT


@contextlib.contextmanager
def stop_on_signals() -> Iterator[SignalWatch]:
    """While the block runs, SIGINT and SIGTERM raise KeyboardInterrupt in the main thread (once; later ones are
    logged and ignored); the previous handlers come back after it. Off the main thread (a Tune trial's driver),
    where Python delivers no signals, it changes nothing."""
    watch = SignalWatch(active=threading.current_thread() is threading.main_thread())
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} if watch.active else {}
    watch.install()
    try:
        yield watch
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
