"""The Paddle-Lite converter's own Python environment.

Paddle-Lite's model optimizer (`paddle_lite_opt`, from the `paddlelite` wheel) is published only for Python <= 3.10,
while ppipe runs on 3.11. ppipe therefore keeps a separate virtual environment, built once from a Python 3.10 found on
the machine and reused afterwards:

    from ppipe.export.lite_env import lite_optimizer
    opt = lite_optimizer()   # path of `paddle_lite_opt`; raises LiteUnavailable (with the reason) when it cannot

The environment lives in ``$PPIPE_CACHE_DIR/paddle-lite-py310`` (default ``~/.cache/ppipe``); ``$PPIPE_PYTHON310``
names the interpreter explicitly, otherwise pyenv's versions and ``python3.10`` on the PATH are tried.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ppipe.host import cache_dir

__all__ = ["LITE_PACKAGE", "LiteUnavailable", "find_python310", "lite_optimizer", "env_dir"]

LITE_PACKAGE = "paddlelite==2.13rc0"  # 2.12 has no cp310 wheel on the registry; 2.13rc0 provides paddle_lite_opt


class LiteUnavailable(Exception):
    """The converter's environment cannot be found or built here; the message says why."""


def env_dir() -> Path:
    return cache_dir("paddle-lite-py310")


def _python_version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    parts = out.stdout.split()
    return (int(parts[0]), int(parts[1])) if out.returncode == 0 and len(parts) == 2 else None


def find_python310() -> str | None:
    """A Python 3.10 interpreter: ``$PPIPE_PYTHON310``, pyenv's 3.10.x builds, then ``python3.10`` on the PATH
    (pyenv's shim is skipped when it is not configured for 3.10: `_python_version` asks the interpreter itself)."""
    roots = [os.environ.get("PYENV_ROOT"), os.path.expanduser("~/.pyenv"), "/root/.pyenv"]
    candidates = [os.environ.get("PPIPE_PYTHON310")]
    for root in filter(None, roots):
        candidates += sorted(glob.glob(os.path.join(root, "versions", "3.10*", "bin", "python3.10")), reverse=True)
    candidates.append(shutil.which("python3.10"))
    for python in dict.fromkeys(filter(None, candidates)):
        if os.path.isfile(python) and _python_version(python) == (3, 10):
            return python
    return None


def _run(cmd: list[str], what: str, timeout: int) -> None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LiteUnavailable(f"{what} took longer than {timeout} s") from None
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        raise LiteUnavailable(f"{what} failed (exit {out.returncode}): {' | '.join(tail)}")


def lite_optimizer(install_timeout: int = 900) -> str:
    """The path of `paddle_lite_opt` in ppipe's Paddle-Lite environment, building the environment on first use
    (the optimizer's presence marks a finished one)."""
    target = env_dir()
    opt = target / "bin" / "paddle_lite_opt"
    if opt.is_file():
        return str(opt)
    python = find_python310()
    if python is None:
        raise LiteUnavailable("no Python 3.10 found (Paddle-Lite's converter has wheels only for Python <= 3.10; "
                              "looked in $PPIPE_PYTHON310, pyenv's versions and python3.10 on the PATH)")
    # venv scripts embed their own path, so the environment is built where it will live; a leftover without the
    # optimizer (an interrupted install) is removed and rebuilt
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    _run([python, "-m", "venv", str(target)], f"creating a Python 3.10 venv at {target}", 300)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    try:
        _run(pip + [LITE_PACKAGE], f"pip install {LITE_PACKAGE} into {target}", install_timeout)
    except LiteUnavailable:
        shutil.rmtree(target, ignore_errors=True)
        raise
    if not opt.is_file():
        raise LiteUnavailable(f"{LITE_PACKAGE} installed into {target} but provides no bin/paddle_lite_opt")
    print(f"ppipe: built the Paddle-Lite converter environment at {target}", file=sys.stderr)
    return str(opt)
