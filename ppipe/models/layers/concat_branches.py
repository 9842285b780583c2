"""Inception's block: parallel chains of named layers whose outputs are concatenated along the channels
(Szegedy et al., 2014-2016; PaddleClas's Inception-v3 and -v4 blocks)."""

from __future__ import annotations

from typing import Mapping, Sequence

import paddle
import paddle.nn as nn


class ConcatBranches(nn.Layer):
    """concat([branch(x) for branch in `branches`], channels), a branch being a chain of `layers` named in order.

    `layers` are registered under their names (PaddleClas's checkpoint names), in the order given. Branches that
    start with the same names compute that prefix once: Inception forks one conv's output into a 1x3 and a 3x1.
    """

    def __init__(self, layers: Mapping[str, nn.Layer], branches: Sequence[Sequence[str]]):
        super().__init__()
        for name, layer in layers.items():
            self.add_sublayer(name, layer)
        self.branches = tuple(tuple(branch) for branch in branches)

    def forward(self, x):
        outputs = {(): x}
        for branch in self.branches:
            for i in range(1, len(branch) + 1):
                if branch[:i] not in outputs:
                    outputs[branch[:i]] = getattr(self, branch[i - 1])(outputs[branch[:i - 1]])
        return paddle.concat([outputs[branch] for branch in self.branches], axis=1)
