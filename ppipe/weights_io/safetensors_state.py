"""ppipe's own weights format: safetensors (https://github.com/huggingface/safetensors), which holds tensors and
a JSON header and nothing that runs on load.

Each tensor is stored under its path in the state: a model's or EMA's `state_dict()` under its own keys, so any
safetensors reader (`paddle.load(path, safetensors=True)` too) sees the state dict; a nested state (ppipe's
optimizer file: `{"optimizer": {..., "LR_Scheduler": {...}, "master_weights": {...}}, "lr": {...}, "amp": {...}}`)
as `optimizer/linear_0.w_0_velocity_0`. The tree itself (its keys in order, numbers, strings, lists, tuples, None)
is JSON in the header's metadata under `ppipe.tree`, where `{"$tensor": name}` stands for a tensor and
`{"$tuple": [...]}` for a tuple; numpy scalars become Python numbers. A file without that entry (written by
another tool) loads as its flat `{name: tensor}`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import paddle
import safetensors
import safetensors.paddle

TREE_KEY = "ppipe.tree"
FORMAT_KEY = "format"
FORMAT = "ppipe.weights/1"
_TENSOR, _TUPLE = "$tensor", "$tuple"


def is_safetensors(path: str | os.PathLike) -> bool:
    """Whether `path` starts like a safetensors file: an 8-byte little-endian header size, then a JSON object.

    A pickle cannot pass for one: its first bytes are PROTO and a protocol number, which read as a header size
    either past the end of the file or not followed by `{`; the header is parsed to be sure.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return False
        n = int.from_bytes(head, "little")
        if not 2 <= n <= size - 8 or f.read(1) != b"{":
            return False
        try:
            return isinstance(json.loads(b"{" + f.read(n - 1)), dict)
        except ValueError:
            return False


def save(state: Mapping, path: str | os.PathLike) -> None:
    """Write `state` (Tensors, arrays, and for a nested state JSON-able leaves) to `path`, atomically."""
    if not isinstance(state, Mapping):
        raise TypeError(f"save_state takes a state dict, got a {type(state).__name__}")
    tensors: dict[str, paddle.Tensor] = {}
    # The tree also keeps the keys' order, which safetensors' header does not.
    metadata = {FORMAT_KEY: FORMAT, TREE_KEY: json.dumps(_encode(state, (), tensors))}
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
    safetensors.paddle.save_file(tensors, tmp, metadata=metadata)
    os.replace(tmp, path)


def load(path: str | os.PathLike, *, return_numpy: bool) -> dict:
    """The state `save` wrote (or any safetensors file's `{name: tensor}`), as Tensors or numpy arrays."""
    with safetensors.safe_open(os.fspath(path), framework="paddle") as f:
        metadata = f.metadata() or {}
        tensors = {k: _on_device(f.get_tensor(k), return_numpy) for k in f.keys()}
    if TREE_KEY not in metadata:
        return tensors
    return _decode(json.loads(metadata[TREE_KEY]), tensors)


def _is_array(v) -> bool:
    return isinstance(v, (paddle.Tensor, np.ndarray))


def _as_tensor(v) -> paddle.Tensor:
    # A copy on the CPU, contiguous, as safetensors needs; bfloat16 and float16 keep their dtype.
    t = v if isinstance(v, paddle.Tensor) else paddle.to_tensor(v, place=paddle.CPUPlace())
    return t.detach().cpu().contiguous()


def _on_device(t: paddle.Tensor, return_numpy: bool):
    if return_numpy:
        return t.numpy()
    # Where paddle.load would put it: the optimizer keeps `master_weights` as they come, so they must be there.
    device = paddle.get_device()
    return t if device == "cpu" else t.to(device)


def _encode(obj: Any, path: tuple, tensors: dict) -> Any:
    where = "/".join(map(str, path)) or "the state"
    if _is_array(obj):
        name = "/".join(map(str, path))
        if name in tensors:
            raise ValueError(f"two tensors of the state would both be stored as {name!r}; rename a key")
        tensors[name] = _as_tensor(obj)
        return {_TENSOR: name}
    if isinstance(obj, Mapping):
        bad = [k for k in obj if not isinstance(k, str) or k.startswith("$")]
        if bad:
            raise TypeError(f"{where}: keys must be strings not starting with '$', got {bad[:3]}")
        return {k: _encode(v, path + (k,), tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, path + (i,), tensors) for i, v in enumerate(obj)]
        return {_TUPLE: items} if isinstance(obj, tuple) else items
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"{where}: cannot store a {type(obj).__name__} (only tensors, arrays, numbers, strings, "
                    "None, and lists, tuples and dicts of them)")


def _decode(obj: Any, tensors: dict) -> Any:
    if isinstance(obj, dict):
        if _TENSOR in obj:
            return tensors[obj[_TENSOR]]
        if _TUPLE in obj:
            return tuple(_decode(v, tensors) for v in obj[_TUPLE])
        return {k: _decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj
