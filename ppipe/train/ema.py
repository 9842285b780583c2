"""Exponential moving average of a model's weights (PaddleClas's `EMA: {decay: 0.9999}`).

After every optimizer step, shadow = decay * shadow + (1 - decay) * weight, for every float parameter and
buffer (BatchNorm statistics included). Evaluation, checkpoints' published weights and export use the
averaged weights (`applied`), which is what EMA recipes report.
"""

from __future__ import annotations

import contextlib

import paddle


class ModelEMA:
    def __init__(self, model: paddle.nn.Layer, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA.decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if paddle.is_floating_point(v)}

    @paddle.no_grad()
    def update(self, model: paddle.nn.Layer) -> None:
        for k, v in model.state_dict().items():
            s = self.shadow.get(k)
            if s is not None:
                s.set_value(s * self.decay + v.detach() * (1.0 - self.decay))

    def state_dict(self) -> dict:
        return dict(self.shadow)

    def set_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            if k in self.shadow:
                self.shadow[k].set_value(paddle.to_tensor(v) if not isinstance(v, paddle.Tensor) else v)

    @contextlib.contextmanager
    def applied(self, model: paddle.nn.Layer):
        """Swap the averaged weights into `model` for the block, then restore the live ones."""
        live = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        model.set_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.set_state_dict(live)
