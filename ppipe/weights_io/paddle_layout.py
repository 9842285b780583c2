"""What `paddle.load` does to a pickle's content after unpickling it (Paddle 3.3.1, `paddle/framework/io.py`), so
that `load_state` returns the same object `paddle.load` would, without going through `pickle.load`.

- `paddle.save` of a flat state dict (`_legacy_save`) writes `{key: ndarray, "StructuredToParameterName@@":
  {key: tensor name}}`, and under protocol 2/3 cuts arrays over 2**30 bytes into `key@@.0`, `key@@.1`... described
  by `"UnpackBigParamInfor@@"` (`_unpack_saved_dict`); `paddle.load` glues them back and drops both tables.
- Any other object (`_pickle_save`) holds each Tensor as `(name, ndarray)`; `_parse_load_result` turns those
  tuples into Tensors and, only when there are none, every bare ndarray instead.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import paddle

NAME_TABLE = "StructuredToParameterName@@"
BIG_ARRAY_TABLE = "UnpackBigParamInfor@@"  # sic: Paddle's spelling


def restore(obj: Any, *, return_numpy: bool) -> Any:
    """`paddle.load`'s result for the unpickled `obj`: Tensors (or arrays with `return_numpy`) where it has them."""
    if isinstance(obj, dict):
        _join_big_arrays(obj)
        if NAME_TABLE in obj:
            names = obj.pop(NAME_TABLE)
            return type(obj)((k, _tensor(v, names.get(k), return_numpy) if isinstance(v, np.ndarray) else v)
                             for k, v in obj.items())
    if _contains(obj, _is_named_array):
        return _map(obj, _is_named_array, lambda t: _tensor(t[1], t[0], return_numpy))
    return _map(obj, lambda v: isinstance(v, np.ndarray), lambda a: _tensor(a, None, return_numpy))


def _join_big_arrays(state: dict) -> None:
    for key, info in state.pop(BIG_ARRAY_TABLE, {}).items():
        state[key] = np.concatenate([state.pop(part) for part in info["slices"]]).reshape(info["OriginShape"])


def _tensor(array: np.ndarray, name: str | None, return_numpy: bool):
    if return_numpy:
        return array
    tensor = paddle.to_tensor(array)
    if name:
        tensor.name = name
    return tensor


def _is_named_array(v) -> bool:
    return type(v) is tuple and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], np.ndarray)


def _contains(obj, test: Callable[[Any], bool]) -> bool:
    if test(obj):
        return True
    if isinstance(obj, dict):
        return any(_contains(v, test) for v in obj.values())
    return isinstance(obj, (list, tuple)) and any(_contains(v, test) for v in obj)


def _map(obj, test: Callable[[Any], bool], convert: Callable[[Any], Any]):
    if test(obj):
        return convert(obj)
    if isinstance(obj, dict):
        return type(obj)((k, _map(v, test, convert)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map(v, test, convert) for v in obj)
    return obj
