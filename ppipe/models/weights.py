"""Loading PaddleClas `.pdparams` checkpoints into ppipe models, strictly.

A `.pdparams` file is a pickle of `{structured_name: array}` (`paddle.save(model.state_dict())`); ppipe's models use
PaddleClas's parameter names, so a checkpoint loads as is. A family whose names differ defines
`remap_checkpoint(state) -> state` on its model class, applied before matching. Files are read with
`ppipe.weights_io.load_state`: a pickle that names anything but arrays and plain containers is refused
(`UnsafeWeightsError`, naming the file) before anything in it runs; ppipe's safetensors files load too.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import paddle

from ppipe import weights_io


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the model; `.missing`, `.unexpected` and `.mismatched` list every offending key."""

    def __init__(self, missing: list[str], unexpected: list[str], mismatched: dict[str, tuple[tuple, tuple]],
                 source: str = "checkpoint"):
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches ({len(mismatched)}): " + ", ".join(
                f"{k} (checkpoint {list(c)}, model {list(m)})" for k, (c, m) in mismatched.items()))
        super().__init__(f"{source} does not fit the model: " + "; ".join(parts))


@dataclass
class LoadReport:
    """What `load_pretrained` did: the keys it loaded and the classifier keys it skipped."""

    loaded: list[str] = field(default_factory=list)
    skipped_classifier: list[str] = field(default_factory=list)


def pdparams_path(path: str | os.PathLike) -> str:
    """`path`, or `path.pdparams` where PaddleClas's habit of leaving out the suffix was followed; a clear
    FileNotFoundError when neither is a file."""
    path = os.fspath(path)
    if not os.path.isfile(path) and os.path.isfile(path + ".pdparams"):
        path += ".pdparams"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path} does not exist (nor {path}.pdparams): expected a .pdparams "
                                "file")
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The `{name: ndarray}` content of a `.pdparams` file; like PaddleClas, `path` may omit the suffix."""
    path = pdparams_path(path)
    state = weights_io.load_state(path, return_numpy=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    return {k: _to_numpy(v) for k, v in state.items()}


def _to_numpy(v) -> np.ndarray:
    return v.numpy() if isinstance(v, paddle.Tensor) else np.asarray(v)


def classifier_prefixes(model: paddle.nn.Layer) -> tuple[str, ...]:
    """The state-dict prefixes of the model's classifiers (`("fc.",)` for most of the zoo).

    `model.classifier_name` is one sub-layer name or a tuple of them, for models with more than one head whose
    width is the class count: a distilled DeiT's `head` and `head_dist`, GoogLeNet's `fc` and its auxiliary heads'
    `aux1.out` and `aux2.out`.
    """
    names = getattr(model, "classifier_name", None) or ()
    return tuple(f"{n}." for n in ((names,) if isinstance(names, str) else names))


def load_pretrained(model: paddle.nn.Layer, checkpoint: str | os.PathLike | Mapping, *,
                    drop_classifier: bool | None = None) -> LoadReport:
    """Load a PaddleClas checkpoint (a `.pdparams` path or a state dict) into `model`, all keys or nothing.

    Every key of the model must be in the checkpoint with the same shape, and nothing else may be there; otherwise
    `CheckpointMismatchError` names every missing key, unexpected key and shape mismatch.

    Fine-tuning: the classifier (`model.classifier_name`, `fc` in most of the zoo; several heads in some models, see
    `classifier_prefixes`) is where a 1000-class checkpoint and a model built with another `num_classes` differ.
    `drop_classifier`:
      * None (default): if classifier keys, and only they, do not fit (other shape, or absent because
        `num_classes=0`), every classifier's keys are skipped with a `UserWarning` naming them, and the classifiers
        keep their fresh initialisation; any other mismatch is still an error.
      * True: always skip the checkpoint's classifiers (warning as above).
      * False: the classifiers must fit like every other key.
    """
    source = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else "checkpoint"
    state = read_checkpoint(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else {
        k: _to_numpy(v) for k, v in checkpoint.items()}
    remap = getattr(model, "remap_checkpoint", None)
    if remap is not None:
        state = remap(state)

    model_state = model.state_dict()
    expected = {k: tuple(v.shape) for k, v in model_state.items()}
    prefixes = classifier_prefixes(model)

    def is_classifier(key: str) -> bool:
        return key.startswith(prefixes) if prefixes else False

    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = {k: (tuple(v.shape), expected[k]) for k, v in state.items()
                  if k in expected and tuple(v.shape) != expected[k]}

    skip: list[str] = []
    classifier_problems = [k for k in [*missing, *unexpected, *mismatched] if is_classifier(k)]
    if drop_classifier or (drop_classifier is None and classifier_problems):
        skip = sorted({k for k in [*expected, *state] if is_classifier(k)})
        missing = [k for k in missing if not is_classifier(k)]
        unexpected = [k for k in unexpected if not is_classifier(k)]
        mismatched = {k: s for k, s in mismatched.items() if not is_classifier(k)}
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(missing, unexpected, mismatched, source)

    if skip:
        detail = ", ".join(f"{k} {list(state[k].shape)}" for k in skip if k in state)
        heads = ", ".join(p.rstrip(".") for p in prefixes)
        warnings.warn(f"{source}: classifier not loaded (checkpoint: {detail or 'none'}); the model's "
                      f"{heads} {'keeps its' if len(prefixes) == 1 else 'keep their'} fresh initialisation for "
                      "fine-tuning",
                      UserWarning, stacklevel=2)
    to_load = {k: v.astype(_np_dtype(model_state[k]), copy=False)
               for k, v in state.items() if k in expected and k not in skip}
    with warnings.catch_warnings():  # paddle warns per skipped key; the classifier warning above says it once
        warnings.filterwarnings("ignore", message="Skip loading for", category=UserWarning)
        model.set_state_dict(to_load)
    return LoadReport(loaded=sorted(to_load), skipped_classifier=skip)


def _np_dtype(t: paddle.Tensor) -> np.dtype:
    return np.dtype(str(t.dtype).replace("paddle.", ""))
