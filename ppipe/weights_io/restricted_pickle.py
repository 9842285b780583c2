"""Reading Paddle's pickled weights (`.pdparams`, `.pdopt`, `.pdema`, `.pdstates`) without running their code.

A pickle names the callables that rebuild its objects, so a crafted `.pdparams` runs whatever it names on
`pickle.load` (and on `paddle.load`, which is `pickle.load`). What `paddle.save` (Paddle 3.3.1) and PaddleClas 2.6's
`save_model` actually write needs very little, as `pickletools` shows on their files:

- every array is `numpy._core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')` then BUILD with a state that
  holds a `numpy.dtype(...)` (itself BUILT with its byte order) and the raw bytes; numpy 1.x (PaddleClas's
  published weights) names the same function `numpy.core.multiarray._reconstruct`;
- protocol 2 (`paddle.save(..., protocol=2)`, older Paddle) encodes those bytes as `_codecs.encode(text, 'latin1')`;
- a Tensor inside an object that is not a flat state dict (an optimizer state list, `{"optimizer": ...}`) is
  Paddle's `reduce_varbase`: `builtins.tuple(((name, array),))`;
- a state dict nested inside another object keeps its type: `collections.OrderedDict()` then SETITEMS;
- numpy scalars (a `np.float32` metric in PaddleClas's `.pdstates`) are `numpy._core.multiarray.scalar(dtype, bytes)`.

`RestrictedUnpickler` admits exactly these, each through a guard that checks its arguments (no object arrays, whose
items a pickle could point anywhere; `_codecs.encode` only to latin-1), refuses the opcodes those files never
use (NEWOBJ, INST, OBJ, persistent ids, the extension registry), and BUILDs nothing but arrays and plain dtypes.
Anything else raises `UnsafeWeightsError` naming the file and what it refused, before it is called.

Not admitted: `builtins.eval`, which Paddle's `reduce_DenseTensor` emits only for a static-graph `DenseTensor`
saved inside an arbitrary object (never a dygraph `state_dict()`), and Paddle's `use_binary_format` files, which
hold a single tensor, never a state dict (`paddle.save` refuses a dict there).
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import os
import pickle
from typing import Any, Callable

import numpy as np

from ppipe.errors import UserError


class UnsafeWeightsError(UserError):
    """A weights file names an object that Paddle's own weight files never contain (and that could run code)."""


def _reconstruct(subtype, shape, dtype):
    # ndarray.__reduce__ always writes `_reconstruct(ndarray, (0,), b'b')`: an empty array that BUILD then fills.
    if not (subtype is np.ndarray and type(shape) is tuple and shape == (0,) and type(dtype) is bytes
            and dtype == b"b"):
        raise _Refused(f"numpy _reconstruct({subtype!r}, {shape!r}, {dtype!r}) (only (numpy.ndarray, (0,), b'b'))")
    return np.ndarray.__new__(np.ndarray, (0,), np.int8)


def _dtype(spec, align=False, copy=True):
    if not isinstance(spec, str):
        raise _Refused(f"numpy.dtype({spec!r}) (only a type string such as 'f4')")
    # Always a fresh copy: BUILD sets its byte order, which must never reach numpy's shared builtin dtypes.
    return _plain_dtype(np.dtype(spec, bool(align), True))


def _scalar(dtype, data=None):
    dtype = _plain_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _Refused(f"numpy scalar of {dtype} without its {dtype.itemsize} raw bytes")
    return np.frombuffer(data, dtype)[0]


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    # Protocol 2 has no bytes opcode: Python's pickler writes bytes as `_codecs.encode(str, 'latin1')`.
    # Other codecs (zlib, bz2) would let a file inflate itself on load.
    if encoding != "latin1" or not isinstance(text, str):
        raise _Refused(f"_codecs.encode to {encoding!r} (only 'latin1', as protocol 2 writes bytes)")
    return codecs.encode(text, "latin1", errors)


def _tuple(items=()):
    if not isinstance(items, (tuple, list)):
        raise _Refused(f"builtins.tuple of a {type(items).__name__} (only of a tuple or list)")
    return tuple(items)


def _ordered_dict(items=()):
    if items:  # OrderedDict pickles as OrderedDict() then SETITEMS; anything else here is not Paddle's.
        raise _Refused("collections.OrderedDict called with arguments")
    return collections.OrderedDict()


def _plain_dtype(dtype) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise _Refused(f"array dtype {dtype!r} (only a numpy.dtype)")
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"numpy dtype {dtype} (only plain numeric dtypes; object items could point anywhere)")
    return dtype


# module.name -> what the unpickler gives instead: a guard with the same signature, never the original callable.
ALLOWED: dict[str, Callable | type] = {
    "numpy._core.multiarray._reconstruct": _reconstruct,  # every ndarray (numpy 2)
    "numpy.core.multiarray._reconstruct": _reconstruct,  # every ndarray (numpy 1.x: PaddleClas's published weights)
    "numpy.ndarray": np.ndarray,  # the subtype argument of _reconstruct; not callable here (see _CALLABLE)
    "numpy.dtype": _dtype,  # every array's dtype
    "numpy._core.multiarray.scalar": _scalar,  # numpy scalars (metrics in .pdstates, numpy-computed LR values)
    "numpy.core.multiarray.scalar": _scalar,
    "_codecs.encode": _latin1_encode,  # bytes under protocol 2
    "builtins.tuple": _tuple,  # Paddle's reduce_varbase: a Tensor as (name, ndarray) inside .pdopt and nested dicts
    "collections.OrderedDict": _ordered_dict,  # a state_dict() nested inside another object
}
_CALLABLE = tuple(v for v in ALLOWED.values() if v is not np.ndarray)


class _Refused(Exception):
    """Raised inside the unpickler; `load_restricted` turns it into an `UnsafeWeightsError` naming the file."""


def _refuse_opcode(name: str):
    def refuse(self):
        raise _Refused(f"pickle opcode {name} (Paddle's weight files never use it)")
    return refuse


class RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with only `ALLOWED` globals, REDUCE only on them, BUILD only on arrays and dtypes.

    The pure-Python class, because only it lets BUILD be checked: numpy's `__setstate__` trusts its state (a dtype
    state can claim object items over raw bytes). Weight files are a few thousand opcodes around large byte
    strings, so it reads them about as fast as the C unpickler.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str):
        if self.proto < 3 and self.fix_imports:  # protocol 2 writes Python 2 names: __builtin__.tuple
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = ALLOWED.get(f"{module}.{name}")
        if found is None:
            raise _Refused(f"`{module}.{name}`")
        return found

    def persistent_load(self, pid):
        raise _Refused(f"a persistent id ({pid!r})")

    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if not any(func is allowed for allowed in _CALLABLE):
            raise _Refused(f"a call to {func!r}")
        self.stack[-1] = func(*args)

    def load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, np.dtype):
            _build_dtype(target, state)
        elif type(target) is np.ndarray:
            _build_array(target, state)
        else:
            raise _Refused(f"setting the state of a {type(target).__name__}")

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.BUILD[0]] = load_build
    for _name in ("NEWOBJ", "NEWOBJ_EX", "INST", "OBJ", "PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4"):
        dispatch[getattr(pickle, _name)[0]] = _refuse_opcode(_name)
    del _name


def _build_dtype(dtype: np.dtype, state) -> None:
    # A plain dtype's state is (version, byteorder, None, None, None, -1, -1, 0): only the byte order is news.
    # Subarrays, fields, sizes and flags are refused: numpy believes the flags, including "holds objects".
    if not (type(state) is tuple and len(state) == 8
            and type(state[1]) is str and state[1] in ("<", ">", "|", "=")
            and all(x is None for x in state[2:5]) and all(type(x) is int for x in state[5:])
            and state[5:] == (-1, -1, dtype.flags)):
        raise _Refused(f"numpy dtype {dtype} with state {state!r} (only a plain dtype's byte order)")
    dtype.__setstate__(state)


def _build_array(array: np.ndarray, state) -> None:
    if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], np.dtype)
            and isinstance(state[4], (bytes, bytearray))):
        raise _Refused("an ndarray state other than (version, shape, dtype, fortran, raw bytes)")
    _plain_dtype(state[2])
    array.__setstate__(state)


def load_restricted(path: str | os.PathLike) -> Any:
    """The object pickled in `path` if it uses only what Paddle's weight files use; else `UnsafeWeightsError`."""
    with open(path, "rb") as f:
        try:
            # latin1, as paddle.load reads them (Python 2 era pickles carry text as 8-bit str).
            return RestrictedUnpickler(f, encoding="latin1").load()
        except _Refused as refused:
            raise UnsafeWeightsError(
                f"{os.fspath(path)}: refused to load {refused}: a weights file may hold only arrays, numbers, "
                "strings and plain containers (anything else can run code when loaded)") from None
        except Exception as e:  # any other failure on untrusted bytes means "not a weights pickle"
            f.seek(0)
            what = ("a Paddle weights pickle that is damaged" if f.read(1) == pickle.PROTO
                    else "neither a Paddle weights pickle nor a safetensors file")
            raise UserError(f"{os.fspath(path)} is {what} ({type(e).__name__}: {e})") from e
