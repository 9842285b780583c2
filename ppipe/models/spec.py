"""Variant metadata: one `ModelSpec` per registered architecture, written next to its entrypoint.

Figures are PaddleClas's published ImageNet-1k model list (see `shared/reference/paddleclas_imagenet1k_zoo.csv`);
they are data in the family files, never read from that CSV at run time, and a test keeps them equal to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ppipe.model_outputs import LOGITS, OutputKind


@dataclass(frozen=True)
class ModelSpec:
    """What the zoo publishes about one architecture.

    `params_m`: millions of parameters; `flops_g`: GFLOPs as PaddleClas's model list counts them; `top1`: ImageNet-1k
    top-1 of the `in1k` weights (a fraction); `input_size`: the square evaluation resolution; `weights`: the tags of
    the published weight files for this architecture, e.g. ("in1k", "ssld"). `fixed_input`: the architecture only
    runs at `input_size` (absolute position embeddings, fixed windows), so tests and export use that size;
    `min_input_size`: the smallest square input other architectures accept. `train_outputs`: what `forward` returns
    in training mode (`ppipe.model_outputs`: "logits", or "heads" for GoogLeNet's `[main, aux1, aux2]`), which the
    config loader checks the recipe's losses and metrics against.
    """

    name: str
    family: str
    params_m: float
    flops_g: float
    top1: float
    input_size: int
    weights: tuple[str, ...]
    fixed_input: bool = False
    min_input_size: int = 32
    train_outputs: OutputKind = LOGITS


def spec(*, family: str, params_m: float, flops_g: float, top1: float, input_size: int = 224,
         weights: tuple[str, ...] = ("in1k",), name: str = "", fixed_input: bool = False,
         min_input_size: int = 32, train_outputs: OutputKind = LOGITS) -> ModelSpec:
    """A spec for `@register_model`; the name defaults to the decorated function's name."""
    return ModelSpec(name=name, family=family, params_m=params_m, flops_g=flops_g, top1=top1,
                     input_size=input_size, weights=tuple(weights), fixed_input=fixed_input,
                     min_input_size=min_input_size, train_outputs=train_outputs)
