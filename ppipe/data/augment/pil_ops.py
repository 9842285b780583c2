"""numpy <-> PIL conversion and the PIL pixel operations that the augmentation policies share, as PaddleClas's
numpy<->PIL wrappers (`ppcls/data/preprocess/__init__.py`) convert around its PIL-based policies."""

from __future__ import annotations

from typing import Any

import numpy as np


def pil_modules():
    from PIL import Image, ImageEnhance, ImageOps

    return Image, ImageEnhance, ImageOps


def to_pil(img: Any):
    Image, _, _ = pil_modules()
    if isinstance(img, Image.Image):
        return img
    return Image.fromarray(np.ascontiguousarray(img))


def to_numpy(img: Any) -> np.ndarray:
    Image, _, _ = pil_modules()
    return np.array(img) if isinstance(img, Image.Image) else img


def posterize(img, bits: int):
    """Keep the top `bits` bits of each channel; bits 0 gives black, as older Pillow (which PaddleClas's
    configs ran on) did; Pillow >= 11 rejects bits outside 1..8."""
    bits = int(bits)
    if bits >= 8:
        return img
    mask = ~(2 ** (8 - bits) - 1) & 0xFF
    lut = [i & mask for i in range(256)]
    return img.point(lut * len(img.getbands()))

