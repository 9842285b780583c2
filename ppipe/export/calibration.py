"""Calibration images for the INT8 targets: images of the prepared train split, through the eval transforms.

    from ppipe.export.calibration import calibration_batches
    for images in calibration_batches(cfg.Data.prepared, cfg, n=256, batch=32):
        ...  # float32 [<=32, C, H, W], 256 images in all

Calibration must see what the deployed model sees (eval transforms: resize + centre crop, no augmentation), drawn
from the train split so the val split stays an unbiased measure of the quantized model's accuracy. The images
are a seeded shuffle of the whole split, so every class is represented and two exports calibrate alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ppipe.config.schema import Config

__all__ = ["calibration_batches"]


def calibration_batches(prepared_url: str, cfg: Config, n: int = 256, batch: int = 32, *,
                        seed: int = 0) -> Iterator[np.ndarray]:
    """`n` images (fewer when the train split is smaller) of `prepared_url`'s train split, in float32 batches
    of at most `batch`, transformed with `cfg`'s eval transforms."""
    from ppipe.data import iter_batches
    from ppipe.evaluate import eval_transform_ops

    if n < 1 or batch < 1:
        raise ValueError(f"calibration needs n >= 1 and batch >= 1 images, got n={n}, batch={batch}")
    left = n
    for images, _labels in iter_batches(prepared_url, "train", eval_transform_ops(cfg), min(batch, n),
                                        shuffle=True, seed=seed, drop_last=False, pad=False):
        yield images[:left]
        left -= len(images[:left])
        if left <= 0:
            return
