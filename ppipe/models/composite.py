"""A Layer made of named member layers, some frozen, some returning feature maps: what PaddleClas's
`DistillationModel` (members side by side) and its `AttentionModel` (members in a chain, AFD) share.

A frozen member does not train: its parameters take no gradient, it runs without one and stays in eval mode (its
BatchNorm statistics are the trained teacher's, not those of the student's batches). A member given
`return_patterns` (`ppipe.models.feature_taps`) returns `{"logits": ..., pattern: feature map, ...}`. Parameter
names are prefixed with the member's key (state-dict keys are built from the sublayer names, not these).
"""

from __future__ import annotations

import paddle
import paddle.nn as nn

from ppipe.models.feature_taps import FeatureTaps


class ModelMembers(nn.Layer):
    """`members` ([(key, layer)]) as sublayers named by their keys; `frozen[i]` freezes the i-th; `taps` gives the
    feature taps of the members that return feature maps. Subclasses say how the members' outputs combine."""

    def __init__(self, members: list[tuple[str, nn.Layer]], frozen: list[bool],
                 taps: dict[str, FeatureTaps] | None = None):
        super().__init__()
        self.names = [key for key, _ in members]
        self.frozen = dict(zip(self.names, (bool(f) for f in frozen)))
        self.taps = dict(taps or {})
        for key, member in members:
            self.add_sublayer(key, member)
            for p in member.parameters():
                # Every zoo model names its parameters conv2d_0.w_0 ... from zero (`create_model`), and the
                # optimizer keeps its state (momentum, Adam's moments) per parameter name: two members training side
                # by side (DML) would share it. The key makes the names unique.
                p.name = f"{key}.{p.name}"
                if self.frozen[key]:
                    p.stop_gradient = True
                    p.trainable = False

    def train(self):
        super().train()
        for key in self.names:
            if self.frozen[key]:
                getattr(self, key).eval()
        return self

    def run_member(self, key: str, x):
        """Member `key`'s output for input `x` (with its feature maps where it has taps)."""
        member = getattr(self, key)
        if not self.frozen[key]:
            return self._forward(key, member, x)
        if member.training:
            # a wrapper's train() (DataParallel's, ModelWithLossLayers', an outer DistillationModel's) sets every
            # sublayer training, this one too
            member.eval()
        with paddle.no_grad():
            return self._forward(key, member, x)

    def _forward(self, key: str, member: nn.Layer, x):
        return self.taps[key](member, x) if key in self.taps else member(x)
