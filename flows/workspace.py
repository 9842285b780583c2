"""The checkout a flow runs in: the deployments' pull step makes it the working directory on the worker,
and relative recipe paths in flow parameters are read from it."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def in_repo(path: str) -> str:
    """`path` made absolute against the checkout when it is relative."""
    return path if os.path.isabs(path) else str(REPO / path)
