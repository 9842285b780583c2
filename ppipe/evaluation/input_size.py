"""The input size a run's model was evaluated and exported at, for its model card, with where it came from.

The architecture's spec gives PaddleClas's ImageNet size (224 for most), but a recipe trains at its own (the
quickstart at 32): the size that holds is the one its eval transforms produce (the last `ResizeImage.size` or
`CropImage.size` among them) and the fixed input shape its export was built with (export.json's `input_shape`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# eval operators whose `size` fixes the image's (height, width): an int, or [w, h] as PaddleClas gives it
FIXED_SIZE_OPERATORS = ("CropImage", "ResizeImage", "RandCropImage")


@dataclass(frozen=True)
class InputSize:
    """(height, width) of the model's input and, in words, what gave it."""

    height: int
    width: int
    source: str

    def as_card_value(self) -> int | str:
        """The card's `input_size`: the side of a square input, as PaddleClas's tables give it, else "HxW"."""
        return self.height if self.height == self.width else f"{self.height}x{self.width}"


def _size_of(params: Any) -> tuple[int, int] | None:
    size = params.get("size") if isinstance(params, dict) else None
    if isinstance(size, int) and size > 0:
        return size, size
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return int(size[1]), int(size[0])
    return None


def eval_transform_size(ops: Sequence[Any]) -> tuple[tuple[int, int], str] | None:
    """((height, width), "Operator.size") the eval `ops` (a PaddleClas `transform_ops` list) end with: set by the
    last operator that resizes or crops to a fixed size, unless a later `ResizeImage.resize_short` makes it
    follow the image's aspect again. None when no operator fixes it."""
    found = None
    for op in ops:
        name, params = next(iter(op.items())) if isinstance(op, dict) and op else (op, None)
        if name not in FIXED_SIZE_OPERATORS:
            continue
        size = _size_of(params)
        if size is not None:
            found = (size, f"{name}.size")
        elif name == "ResizeImage":
            found = None  # resize_short: the size follows each image
    return found


def model_input_size(eval_ops: Sequence[Any], export_shape: Sequence[int] | None, spec_size: int) -> InputSize:
    """The input size of a run's model: the exported model's (export.json `input_shape`, C x H x W) and its eval
    transforms' size, which agree in a well-made run; where they differ the export's is given and the
    difference said. Neither known: the architecture's spec size, said to be only that."""
    evaluated = eval_transform_size(eval_ops)
    exported = (int(export_shape[-2]), int(export_shape[-1])) if export_shape and len(export_shape) >= 2 else None
    if exported and evaluated and evaluated[0] == exported:
        return InputSize(*exported, f"the eval transforms ({evaluated[1]}) and the export's input_shape")
    if exported:
        other = (f"; the eval transforms' {evaluated[1]} gives {evaluated[0][0]}x{evaluated[0][1]}"
                 if evaluated else "")
        return InputSize(*exported, f"the export's input_shape (export.json){other}")
    if evaluated:
        return InputSize(*evaluated[0], f"the eval transforms ({evaluated[1]}); the run was not exported")
    return InputSize(spec_size, spec_size, "the architecture's spec (PaddleClas's size): the recipe's eval "
                                           "transforms fix no size and the run was not exported")
