"""Intermediate outputs of a zoo model, named as PaddleClas's `return_patterns` names them.

PaddleClas's `TheseusLayer` (ppcls/arch/backbone/base/theseus_layer.py) takes `return_patterns: ["blocks[2]",
"avg_pool"]`: sublayer paths (attribute names joined by dots, `[i]` indexing a Sequential or LayerList), whose
outputs the model returns beside its logits as `{"logits": logits, "blocks[2]": feature, ...}`. ppipe's zoo
models keep PaddleClas's sublayer names (`blocks`, `blocks3`, `avg_pool`, ...), so a pattern names the same layer
in both.

`FeatureTaps` attaches its forward hooks for one forward pass only: the model stays a plain zoo model, so its
parameters, its exported form and its single-tensor forward are those of the model without taps. Gradients flow
through a tapped output as through the network (PaddleClas stops none either).
"""

from __future__ import annotations

import re
from typing import Sequence

import paddle.nn as nn

_STEP = re.compile(r"([A-Za-z_]\w*)((?:\[\d+\])*)")


def resolve_pattern(model: nn.Layer, pattern: str) -> nn.Layer:
    """The sublayer of `model` that `pattern` names; ValueError naming the step that does not resolve and what
    is there instead."""
    layer, path = model, type(model).__name__
    for step in pattern.split("."):
        match = _STEP.fullmatch(step)
        if match is None:
            raise ValueError(f"return_patterns: {pattern!r} is not a sublayer path such as 'blocks[2]' or 'stem.0'")
        name, indexes = match[1], [int(i) for i in re.findall(r"\d+", match[2])]
        children = dict(layer.named_children())
        if name not in children:
            raise ValueError(f"return_patterns: {pattern!r}: {path} has no sublayer {name!r}; its sublayers are "
                             f"{', '.join(children) or '(none)'}")
        layer, path = children[name], f"{path}.{name}"
        for index in indexes:
            items = list(layer.children())
            if index >= len(items):
                raise ValueError(f"return_patterns: {pattern!r}: {path} has {len(items)} sublayers, no [{index}]")
            layer, path = items[index], f"{path}[{index}]"
    return layer


def check_patterns(patterns, where: str) -> tuple[str, ...]:
    """`patterns` as a recipe gives them (a list of sublayer paths, or one path) as a tuple; ValueError otherwise."""
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, (list, tuple)) or not patterns or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f"{where}: expected a list of sublayer paths such as ['blocks[2]', 'avg_pool'], "
                         f"got {patterns!r}")
    if "logits" in patterns:
        raise ValueError(f"{where}: 'logits' names the model's own output, not a sublayer")
    return tuple(patterns)


class FeatureTaps:
    """Runs a model and returns `{"logits": its output, pattern: that sublayer's output, ...}`."""

    def __init__(self, patterns: Sequence[str]):
        self.patterns = check_patterns(list(patterns), "return_patterns")

    def check(self, model: nn.Layer) -> None:
        """Raise ValueError unless every pattern names a sublayer of `model`."""
        for pattern in self.patterns:
            resolve_pattern(model, pattern)

    def __call__(self, model: nn.Layer, x):
        captured: dict = {}
        handles = []
        try:
            # resolved on every pass: in-place layer changes made after the model was built (CPU kernel
            # switches) must not leave a hook on a layer that no longer runs
            for pattern in self.patterns:
                handles.append(resolve_pattern(model, pattern).register_forward_post_hook(_store(captured, pattern)))
            logits = model(x)
        finally:
            for handle in handles:
                handle.remove()
        missing = [p for p in self.patterns if p not in captured]
        if missing:
            raise ValueError(f"return_patterns: {', '.join(map(repr, missing))} did not run in "
                             f"{type(model).__name__}'s forward pass")
        return {"logits": logits, **captured}


def _store(captured: dict, pattern: str):
    def hook(layer, inputs, output):
        captured[pattern] = output

    return hook
