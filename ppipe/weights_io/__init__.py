"""Every weights file ppipe reads or writes goes through here: loading never runs code from the file.

`load_state(path)` reads a Paddle/PaddleClas pickle (`.pdparams`, `.pdopt`, `.pdema`, `.pdstates`) through a
restricted unpickler that admits only what `paddle.save` writes (`restricted_pickle.ALLOWED`), or a safetensors
file, telling them apart by content so either may carry any name; it returns what `paddle.load(path)` returns for
the same file. `save_state(state, path)` writes safetensors, ppipe's own format for checkpoints and published
weights (`safetensors_state`): nothing executable, and readable by any safetensors tool.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import safetensors

from ppipe.errors import UserError
from ppipe.weights_io import paddle_layout, restricted_pickle, safetensors_state
from ppipe.weights_io.restricted_pickle import UnsafeWeightsError

__all__ = ["UnsafeWeightsError", "load_state", "save_state", "weights_format"]


def weights_format(path: str | os.PathLike) -> Literal["safetensors", "pickle"]:
    """What `path` holds, judged by its bytes: a safetensors header, else (whatever its name) a pickle."""
    return "safetensors" if safetensors_state.is_safetensors(path) else "pickle"


def load_state(path: str | os.PathLike, *, return_numpy: bool = False) -> Any:
    """The content of weights file `path`, as `paddle.load(path, return_numpy=return_numpy)` returns it.

    Tensors come back as `paddle.Tensor` (numpy arrays with `return_numpy`); both go to `Layer.set_state_dict`,
    while `Optimizer.set_state_dict` needs Tensors (it keeps `master_weights` as given). A pickle that names
    anything beyond Paddle's arrays and plain containers raises `UnsafeWeightsError` (a `UserError`) naming the
    file and the refused object, before anything it names is called.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {os.fspath(path)} not found")
    if weights_format(path) == "safetensors":
        try:
            return safetensors_state.load(path, return_numpy=return_numpy)
        except (ValueError, KeyError, OSError, safetensors.SafetensorError) as e:
            raise UserError(f"{os.fspath(path)} is not a readable safetensors weights file ({e})") from e
    content = restricted_pickle.load_restricted(path)
    try:
        return paddle_layout.restore(content, return_numpy=return_numpy)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise UserError(f"{os.fspath(path)} is a pickle not laid out as paddle.save writes one "
                        f"({type(e).__name__}: {e})") from e


def save_state(state: Mapping, path: str | os.PathLike) -> None:
    """Write `state` (a state dict of Tensors or arrays, or a nested optimizer state) as safetensors.

    `load_state(path)` gives it back: the same keys, Tensors for tensors, the non-tensor leaves (LR-schedule
    counters, loss-scaler settings) as JSON kept them (tuples stay tuples, numpy scalars become Python numbers).
    """
    safetensors_state.save(state, path)
