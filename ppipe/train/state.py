"""What a training run has done so far: the part of a checkpoint that is not tensors (`state.json`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class TrainState:
    """Progress of one run; saved with every checkpoint and restored on a restart.

    `batch_in_epoch`: the data position of a mid-epoch checkpoint (0 at epoch end). `restarts`: starts of the
    worker group before this one. `batches_this_start`: batches trained since this start (a restart's resume
    point shows in it). `lr_scaling`: what the linear scaling rule changed, if anything. `precision`: what the
    workers trained in ("float32", "float16 AMP O1"/"O2").
    """

    epochs_completed: int = 0
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    batch_in_epoch: int = 0
    restarts: int = 0
    batches_this_start: int = 0
    lr_scaling: str | None = None
    precision: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "state.json") -> TrainState:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown training-state keys {unknown} (expected some of {sorted(known)})")
        return cls(**data)

    def start_again(self, restarts: int) -> None:
        """A new start of the worker group (the first one included) continues from this state."""
        self.restarts = restarts
        self.batches_this_start = 0

    @property
    def final_metrics(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}
