"""What a model's forward returns, in the words losses and metrics use to say which outputs they accept.

Three kinds, as in PaddleClas:
* `LOGITS`: one [N, classes] tensor (every zoo model in evaluation, most in training too);
* `HEADS`: a list with the main logits first (GoogLeNet in training: `[main, aux1, aux2]`);
* `NAMED`: `{model key: output}` (a DistillationModel).

A model declares the kind it trains with (`ModelSpec.train_outputs`, `DistillationModel.train_outputs`); a loss or
metric class declares the kinds it accepts (`accepts`). The config loader compares the two, so a recipe that pairs
a model with a loss that cannot read its outputs fails at load, with the names of the ones that can.
"""

from __future__ import annotations

from typing import Literal

from ppipe.errors import ConfigError

OutputKind = Literal["logits", "heads", "named"]
LOGITS: OutputKind = "logits"
HEADS: OutputKind = "heads"
NAMED: OutputKind = "named"

DESCRIPTION = {LOGITS: "one logits tensor", HEADS: "a list of heads' logits, the main head's first",
               NAMED: "the named outputs of several models"}


def check_accepts(registry, name: str, kind: OutputKind, where: str, model: str) -> None:
    """Refuse `registry`'s entry `name` (a loss or metric class) unless it accepts outputs of `kind`, naming the
    registered entries that do."""
    accepts = registry.get(name, where).accepts
    if kind in accepts:
        return
    fitting = [n for n in registry.names() if kind in registry.get(n).accepts]
    raise ConfigError(f"{where}.{name}: takes {' or '.join(DESCRIPTION[k] for k in sorted(accepts))}, but {model} "
                      f"gives {DESCRIPTION[kind]}; use {' or '.join(fitting) or f'another {registry.kind}'}")
