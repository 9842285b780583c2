"""What a person sees while ppipe runs: one line per epoch or stage, a progress bar within long epochs, and the
logs of Ray, Paddle and gloo only when asked for (`--verbose`). `--json` keeps stdout for its one document.

The run's processes are the driver (the CLI or the Prefect flow), Ray's raylet and Train controller, and the
training workers. Their output reaches the console along three paths, each handled here:
- the driver's own Python logging and warnings (`configure`);
- the workers' and controller's stdout/stderr, which Ray streams to the driver (`log_to_driver`) and prints to
  the driver's stdout or stderr as they printed it (`route_ray_output` sends all of it to stderr, without the
  lines in `NOISE` unless verbose);
- C++ logging (glog in Paddle and gloo) and Python warnings inside the workers, which only environment
  variables set before those processes start can quiet (`worker_env`).
Whatever else writes to file descriptor 1 (Ray's raylet messages after a worker dies, C++ code) is kept off a
`--json` document by `json_stdout`, which points descriptor 1 at stderr while the command runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
import warnings
from typing import Any, Callable, Iterator, TextIO

VERBOSE_ENV = "PPIPE_VERBOSE"  # "1": the driver was started with --verbose (workers inherit it)
TTY_ENV = "PPIPE_CONSOLE_TTY"  # "1": the driver's stderr is a terminal (a progress bar at once)
PROGRESS_LINE_EVERY_S = 30.0  # without a terminal, a progress line this often within an epoch

# Lines the run's processes print that say nothing a user acts on; shown with --verbose.
NOISE = tuple(re.compile(p) for p in (
    r"Reporting training result \d+",  # Ray Train, twice per epoch and worker
    r"Checkpoint successfully created at",
    r"Attempting to start training worker group",
    r"Started training worker group",
    r"^- \(ip=\S+, pid=\d+\) world_rank=",  # the worker list under "Started training worker group"
    r"\b(tcp_store|tcp_utils)\.cc:\d+\]",  # gloo's TCP store (glog INFO)
    r"=+ Modified FLAGS detected =+", r"^FLAGS\(name=", r"^=+$",  # Paddle's init_parallel_env
    r"No ccache found", r"^\s*warnings\.warn\(warning_message\)$",  # Paddle's cpp_extension on import
    r"Token authentication is enabled for this Ray cluster",
    r"malloc keeps freed memory",
    r"Compiling user custom op",
    r"\[\s*INFO\] (dist|build_ext|base|extension_utils)\.py:\d+ - ",  # Paddle's cpp_extension build log
    r" - INFO - Re-Compiling ",
    r"loading ppipe's oneDNN convolution operator",
    # Paddle's distributed init where a worker runs several math threads, as ppipe chooses (`Ray.cpus_per_worker`)
    r"^WARNING: OMP_NUM_THREADS set to \d+, not 1\.", r"^PLEASE USE OMP_NUM_THREADS WISELY\.",
))

# Loggers whose INFO/WARNING records are noise for a person: the token-auth notice, every HTTP request (Prefect).
_QUIET_LOGGERS = ("ray._private.authentication.authentication_token_setup", "httpx")


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def is_noise(line: str) -> bool:
    return any(p.search(line) for p in NOISE)


class _NoiseFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not is_noise(record.getMessage())


class _ConsoleFormatter(logging.Formatter):
    """`HH:MM:SS message`, with `warning:`/`error:` before what needs attention."""

    def __init__(self):
        super().__init__("%(asctime)s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            stamp, _, rest = text.partition(" ")
            text = f"{stamp} {record.levelname.lower()}: {rest}"
        return text


def worker_env(is_verbose: bool) -> dict[str, str]:
    """Environment for the processes a run starts (raylet, controller, workers): glog below ERROR and the ccache
    warning off unless verbose, and what the workers need to know about the console."""
    env = {VERBOSE_ENV: "1" if is_verbose else "0", TTY_ENV: "1" if sys.stderr.isatty() else "0"}
    if not is_verbose:
        user = [f for f in (os.environ.get("PYTHONWARNINGS") or "").split(",") if f]
        ours = [f"ignore:{message}:UserWarning" for message in QUIET_WARNINGS]
        env |= {"GLOG_minloglevel": os.environ.get("GLOG_minloglevel", "2"),
                "PYTHONWARNINGS": ",".join(user + [f for f in ours if f not in user])}
    return env


# Python UserWarnings that are noise in every ppipe process, by the start of their message (PYTHONWARNINGS
# splits on commas, so no commas here): Paddle's cpp_extension on import, and Paddle's BatchNorm1D in training
# (LeViT, AFD's transforms) saying it always tracks global statistics.
QUIET_WARNINGS = ("No ccache found", "When training")


def quiet_warnings() -> None:
    """Python warnings that are noise in every ppipe process (the driver, and workers started elsewhere)."""
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)


class _StderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is when a record is emitted, not as it was when configured: whoever swaps
    `sys.stderr` for a while (`contextlib.redirect_stderr`, a notebook, pytest's capture) and then closes the stream
    would otherwise leave every later log line failing with "I/O operation on closed file"."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass  # always the current sys.stderr


def configure(is_verbose: bool) -> None:
    """The driver's console: logging to stderr (DEBUG with `is_verbose`, else INFO without third-party noise),
    and the environment the run's processes inherit."""
    os.environ.update(worker_env(is_verbose))
    handler = _StderrHandler()
    if is_verbose:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    else:
        handler.setFormatter(_ConsoleFormatter())
        handler.addFilter(_NoiseFilter())
        quiet_warnings()
        os.environ.setdefault("WANDB_SILENT", "true")  # wandb's ~30-line run banner and summary
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    logging.basicConfig(level=logging.DEBUG if is_verbose else logging.INFO, handlers=[handler], force=True)


def route_ray_output(is_verbose: bool | None = None) -> None:
    """Print what Ray streams from the run's processes to this driver on stderr, never stdout, and without the
    lines in `NOISE` (and Ray's `(RayTrainWorker pid=...)` prefixes) unless verbose. Call after `ray.init`.

    Ray's driver prints worker output through one handler of its stream dispatcher, and the raylet's messages (a
    worker died, out of memory) from a thread of its own, both through `print_to_stdstream`, onto stdout for
    anything the process printed there (`ray._private.worker`). That function is replaced by one that always
    prints to stderr; where a Ray version lays this out differently, its own printing stays."""
    try:
        from ray._private import worker as ray_worker
        dispatcher = ray_worker.global_worker_stdstream_dispatcher
        print_to_stdstream = getattr(ray_worker.print_to_stdstream, "ray_original", ray_worker.print_to_stdstream)
    except (ImportError, AttributeError):
        return
    is_verbose = verbose() if is_verbose is None else is_verbose

    def print_to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        print_to_stdstream({**data, "is_err": True}, ignore_prefix)

    print_to_stderr.ray_original = print_to_stdstream
    ray_worker.print_to_stdstream = print_to_stderr

    def to_stderr(data: dict[str, Any]) -> None:
        lines = [line for line in data.get("lines", []) if is_verbose or not is_noise(line)]
        if lines:
            print_to_stdstream({**data, "lines": lines, "is_err": True}, ignore_prefix=not is_verbose)

    with contextlib.suppress(KeyError, ValueError):
        dispatcher.remove_handler("ray_print_logs")
    dispatcher.add_handler("ray_print_logs", to_stderr)


@contextlib.contextmanager
def json_stdout() -> Iterator[TextIO]:
    """A stream onto this process's stdout for one JSON document, while everything else written to stdout (by
    Python, Ray's threads, C++ code, child processes started meanwhile) goes to stderr."""
    sys.stdout.flush()
    original = sys.stdout
    saved = os.dup(1)
    os.dup2(2, 1)
    # Where Python's stdout is not descriptor 1 (pytest's capture, a notebook), the document goes where it points.
    document = os.fdopen(os.dup(saved), "w") if _is_descriptor_1(original) else None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield document or original
    finally:
        if document is not None:
            document.flush()
            document.close()
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _is_descriptor_1(stream) -> bool:
    try:
        return stream.fileno() == 1
    except (AttributeError, OSError, ValueError):
        return False


def epoch_line(metrics: dict[str, Any], epochs: int, *, checkpoint: bool) -> str:
    """The console's line for one finished epoch (a `ppipe.train.reporting.epoch_metrics` row)."""
    def pct(key):
        return f"{100 * metrics[key]:.1f}%" if metrics.get(key) is not None else "-"

    parts = [f"epoch {metrics['epoch']}/{epochs}", f"loss {metrics['train_loss']:.4f}",
             f"train top-1 {pct('train_top1')}", f"val top-1 {pct('top1')}",
             f"{metrics['train_img_per_s']:.0f} img/s", f"{metrics['epoch_time_s']:.1f} s"]
    if metrics.get("restarts"):
        parts.append(f"restarts {metrics['restarts']}")
    if checkpoint:
        parts.append("checkpoint saved")
    return "  ".join(parts)


def print_line(line: str) -> None:
    """A console line of a run (an epoch's): on stderr, flushed so Ray streams it at once. Written, not printed:
    Ray Train's workers replace `print` with one that also logs the line, which would show it twice."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class _NoProgress:
    """Progress that shows nothing; the base of `LineProgress`, with tqdm's context-manager shape."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress(_NoProgress):
    """Progress of long work as plain lines, for a log file or CI, where a bar's redraws are unreadable: a line
    ``DESC  done/total UNIT (pct)  rate UNIT/s  ~N s left`` every `PROGRESS_LINE_EVERY_S`, none for work that
    ends sooner. `write` takes each line (default `print_line`, stderr)."""

    def __init__(self, desc: str, total: int, unit: str, *, write: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.desc, self.total, self.unit = desc, total, unit
        self.write, self.clock = write or print_line, clock
        self.started = self.last_line = clock()
        self.done = 0

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.clock() - self.last_line >= PROGRESS_LINE_EVERY_S:
            self.last_line = self.clock()
            self.write(self.line())

    def line(self) -> str:
        """`epoch 3/30  120/450 batches (27%)  4.0 batches/s  ~82 s left`."""
        rate = self.done / max(self.clock() - self.started, 1e-9)
        parts = [self.desc, f"{self.done}/{self.total} {self.unit} ({100 * self.done / max(self.total, 1):.0f}%)",
                 f"{rate:.1f} {self.unit}/s"]
        if rate > 0 and self.total > self.done:
            parts.append(f"~{(self.total - self.done) / rate:.0f} s left")
        return "  ".join(parts)


def progress(desc: str, total: int, unit: str, *, enabled: bool = True):
    """Progress over `total` UNITs of this process's work: a tqdm bar where stderr is a terminal, else
    `LineProgress`; nothing when not `enabled`. A context manager with ``update(n)``."""
    if not enabled:
        return _NoProgress()
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit.removesuffix("s"), file=sys.stderr, dynamic_ncols=True)
    return LineProgress(desc, total, unit)


class EpochProgress:
    """Progress within one epoch's batches, from the worker of rank 0 (whose own stderr is never a terminal:
    Ray streams it to the driver). Where the driver's stderr is a terminal, a bar (Ray's `tqdm_ray` draws it on
    the driver); elsewhere `LineProgress`'s lines."""

    def __init__(self, epoch: int, epochs: int, total: int, *, show: bool = True,
                 write: Callable[[str], None] | None = None, clock: Callable[[], float] = time.perf_counter):
        desc = f"epoch {epoch + 1}/{epochs}"
        self.bar: Any = _NoProgress()
        if show and os.environ.get(TTY_ENV) == "1":
            from ray.experimental.tqdm_ray import tqdm

            self.bar = tqdm(desc=desc, total=total, unit="batch")
        elif show:
            self.bar = LineProgress(desc, total, "batches", write=write, clock=clock)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()
