"""The transformer feed-forward block: Linear -> activation -> dropout -> Linear -> dropout.

Parameter names `fc1`/`fc2` are those of PaddleClas's vision transformers (ViT, DeiT, Swin, PVT, Twins, ...).
"""

from __future__ import annotations

import paddle.nn as nn

from ppipe.models.layers.activations import create_act


class Mlp(nn.Layer):
    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None,
                 act: str = "gelu", drop: float = 0.0):
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = create_act(act)
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
