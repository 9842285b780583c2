"""PaddleClas's source tree as a second oracle, for what the pinned `paddleclas==2.6.0` wheel predates (Diverse
Branch Blocks). Used only when PADDLECLAS_SRC points to a checkout.

Its top-level `ppcls` package must not outlive the import: left in `sys.modules` it shadows the one the wheel
imports internally, and every later test using the wheel's oracle fails to import it.
"""

from __future__ import annotations

import importlib
import os
import sys

PADDLECLAS_SRC = os.environ.get("PADDLECLAS_SRC")


def from_source(module: str, *names: str):
    """`names` from PaddleClas source module `module` (e.g. "ppcls.arch.backbone.base.dbb.dbb_block"); the
    source tree's modules are dropped from `sys.modules` and `sys.path` again afterwards."""
    before = set(sys.modules)
    sys.path.insert(0, str(PADDLECLAS_SRC))
    try:
        mod = importlib.import_module(module)
        if module.startswith("ppcls.arch"):
            # its ResNet logs a deprecation through a logger that must be set up first
            importlib.import_module("ppcls.utils.logger").init_logger()
        return tuple(getattr(mod, n) for n in names)
    finally:
        sys.path.remove(str(PADDLECLAS_SRC))
        for name in set(sys.modules) - before:
            if name == "ppcls" or name.startswith("ppcls."):
                del sys.modules[name]
