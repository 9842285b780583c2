"""PaddleClas's colour operators: ColorJitter (paddle.vision's, on PIL images) and PCALighting (AlexNet's
lighting noise, Krizhevsky et al., 2012). HWC RGB in; they go before NormalizeImage."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ppipe.data.augment.pil_ops import pil_modules, to_numpy, to_pil
from ppipe.data.operators import OperatorParamError, register_operator
from ppipe.data.transforms import Operator

__all__ = ["ColorJitter", "PCALighting"]


def _jitter_range(name: str, value: float | list[float], center: float, bound: tuple[float, float],
                  clip_at_zero: bool) -> tuple[float, float] | None:
    """The factor range of one ColorJitter component, as paddle.vision's ColorJitter reads it: a number v gives
    [center - v, center + v] (clipped at 0 for the multiplicative ones), a pair is taken as it is; None when the
    range is the identity."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise OperatorParamError(f"ColorJitter: {name} must be >= 0, got {value}")
        low, high = center - value, center + value
        low = max(low, 0.0) if clip_at_zero else low
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = float(value[0]), float(value[1])
    else:
        raise OperatorParamError(f"ColorJitter: {name} must be a number or a [low, high] pair, got {value!r}")
    if not bound[0] <= low <= high <= bound[1]:
        raise OperatorParamError(f"ColorJitter: {name} range must lie within {list(bound)}, got [{low}, {high}]")
    return None if low == high == center else (low, high)


def _shift_hue(img, factor: float):
    """Rotate the hue channel of PIL's HSV by `factor` of a turn (paddle.vision's adjust_hue, uint8 wrap)."""
    Image, _, _ = pil_modules()
    h, s, v = img.convert("HSV").split()
    shifted = ((np.asarray(h, dtype=np.int16) + int(factor * 255)) % 256).astype(np.uint8)
    return Image.merge("HSV", (Image.fromarray(shifted, "L"), s, v)).convert(img.mode)


@register_operator
class ColorJitter(Operator):
    """PaddleClas's ColorJitter (paddle.vision's, on PIL images): with probability `prob` (its default 2:
    always), brightness, contrast, saturation and hue factors drawn uniformly from their ranges, applied in a
    random order. HWC uint8 RGB in and out; goes before NormalizeImage."""

    def __init__(self, brightness: float | list[float] = 0, contrast: float | list[float] = 0,
                 saturation: float | list[float] = 0, hue: float | list[float] = 0, prob: float = 2) -> None:
        super().__init__()
        _, enhance, _ = pil_modules()
        self.prob = float(prob)
        self.components: list[tuple[tuple[float, float], Callable]] = []
        for name, value, apply in (("brightness", brightness, lambda im, f: enhance.Brightness(im).enhance(f)),
                                   ("contrast", contrast, lambda im, f: enhance.Contrast(im).enhance(f)),
                                   ("saturation", saturation, lambda im, f: enhance.Color(im).enhance(f))):
            rng = _jitter_range(name, value, 1.0, (0.0, float("inf")), clip_at_zero=True)
            if rng is not None:
                self.components.append((rng, apply))
        rng = _jitter_range("hue", hue, 0.0, (-0.5, 0.5), clip_at_zero=False)
        if rng is not None:
            self.components.append((rng, _shift_hue))

    def __call__(self, img: Any) -> np.ndarray:
        if not self.components or self.rng.random() >= self.prob:
            return img
        pil = to_pil(img)
        for (low, high), apply in self.rng.sample(self.components, len(self.components)):
            pil = apply(pil, self.rng.uniform(low, high))
        return to_numpy(pil)


@register_operator
class PCALighting(Operator):
    """AlexNet's lighting noise (Krizhevsky et al., 2012), as PaddleClas's PCALighting (from the Diverse Branch
    Block recipe): one RGB offset per image along ImageNet's colour principal components, each scaled by an
    N(0, alphastd) draw and its eigenvalue. HWC RGB in, float32 HWC out; goes before NormalizeImage. At this
    scale (offsets of ~0.1 on 0-255 pixels) it is a faithful reproduction of the recipe rather than a strong
    augmentation."""

    EIGVAL = np.array([0.2175, 0.0188, 0.0045], dtype=np.float32)
    EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                       [-0.5808, -0.0045, -0.8140],
                       [-0.5836, -0.6948, 0.4203]], dtype=np.float32)

    def __init__(self, alphastd: float = 0.1) -> None:
        super().__init__()
        if alphastd < 0:
            raise OperatorParamError(f"PCALighting: alphastd must be >= 0, got {alphastd}")
        self.alphastd = float(alphastd)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.alphastd == 0:
            return img
        alpha = np.array([self.rng.gauss(0.0, self.alphastd) for _ in range(3)], dtype=np.float32)
        offset = self.EIGVEC @ (alpha * self.EIGVAL)
        return np.asarray(img, dtype=np.float32) + offset
