"""PaddleClas's AutoAugment (ImageNetPolicy) and RandAugment operators (Cubuk et al., arXiv:1805.09501 and
arXiv:1909.13719), as `ppcls/data/preprocess/ops/{autoaugment,randaugment}.py` in PaddleClas 2.6 apply them.

Both take an HWC uint8 RGB array (or a PIL image) and return an HWC uint8 array; they go before NormalizeImage.
"""

from __future__ import annotations

import random
from typing import Any, Callable

import numpy as np

from ppipe.data.augment.pil_ops import pil_modules, posterize, to_numpy, to_pil
from ppipe.data.operators import OperatorParamError, register_operator
from ppipe.data.transforms import Operator

__all__ = ["AutoAugment", "IMAGENET_POLICY", "RandAugment"]

# Each operation takes (PIL image, magnitude, rng, fillcolor). Signs are drawn from rng, as PaddleClas draws
# random.choice([-1, 1]) inside each operation.


def _sign(rng: random.Random) -> int:
    return rng.choice([-1, 1])


def _rotate_with_fill(img, degrees: float):
    """Rotate counter-clockwise, corners filled with grey 128 (PaddleClas ignores `fillcolor` here)."""
    Image, _, _ = pil_modules()
    rot = img.convert("RGBA").rotate(degrees)
    return Image.composite(rot, Image.new("RGBA", rot.size, (128,) * 4), rot).convert(img.mode)


def _affine(img, coeffs, fillcolor, resample=None):
    Image, _, _ = pil_modules()
    if resample is None:
        return img.transform(img.size, Image.Transform.AFFINE, coeffs, fillcolor=fillcolor)
    return img.transform(img.size, Image.Transform.AFFINE, coeffs, resample, fillcolor=fillcolor)


def _signed_affine(coefficients: Callable, resample=None) -> Callable:
    """An operation applying the affine map `coefficients(signed magnitude, width, height)`."""
    return lambda img, m, rng, fill: _affine(img, coefficients(m * _sign(rng), *img.size), fill, resample)


def _signed_enhance(enhancer) -> Callable:
    """An operation applying a PIL ImageEnhance `enhancer` at factor 1 +/- magnitude."""
    return lambda img, m, rng, fill: enhancer(img).enhance(1 + m * _sign(rng))


def _pc_ops() -> dict[str, Callable]:
    Image, ImageEnhance, ImageOps = pil_modules()
    bicubic = Image.Resampling.BICUBIC
    return {
        "shearX": _signed_affine(lambda v, w, h: (1, v, 0, 0, 1, 0), bicubic),
        "shearY": _signed_affine(lambda v, w, h: (1, 0, 0, v, 1, 0), bicubic),
        "translateX": _signed_affine(lambda v, w, h: (1, 0, v * w, 0, 1, 0)),
        "translateY": _signed_affine(lambda v, w, h: (1, 0, 0, 0, 1, v * h)),
        "rotate": lambda img, m, rng, fill: _rotate_with_fill(img, m),
        "color": _signed_enhance(ImageEnhance.Color),
        "posterize": lambda img, m, rng, fill: posterize(img, m),
        "solarize": lambda img, m, rng, fill: ImageOps.solarize(img, m),
        "contrast": _signed_enhance(ImageEnhance.Contrast),
        "sharpness": _signed_enhance(ImageEnhance.Sharpness),
        "brightness": _signed_enhance(ImageEnhance.Brightness),
        "autocontrast": lambda img, m, rng, fill: ImageOps.autocontrast(img),
        "equalize": lambda img, m, rng, fill: ImageOps.equalize(img),
        "invert": lambda img, m, rng, fill: ImageOps.invert(img),
    }


def _policy_ranges() -> dict[str, Any]:
    """Magnitude index (0..9) -> value, for ImageNetPolicy's sub-policies."""
    return {
        "shearX": np.linspace(0, 0.3, 10), "shearY": np.linspace(0, 0.3, 10),
        "translateX": np.linspace(0, 150 / 331, 10), "translateY": np.linspace(0, 150 / 331, 10),
        "rotate": np.linspace(0, 30, 10), "color": np.linspace(0.0, 0.9, 10),
        "posterize": np.round(np.linspace(8, 4, 10), 0).astype(int), "solarize": np.linspace(256, 0, 10),
        "contrast": np.linspace(0.0, 0.9, 10), "sharpness": np.linspace(0.0, 0.9, 10),
        "brightness": np.linspace(0.0, 0.9, 10),
        "autocontrast": [0] * 10, "equalize": [0] * 10, "invert": [0] * 10,
    }


# (p1, op1, magnitude index 1, p2, op2, magnitude index 2): the AutoAugment paper's ImageNet policy, in
# PaddleClas's order. Its last five sub-policies repeat earlier ones, so those five are drawn twice as often.
IMAGENET_POLICY = [
    (0.4, "posterize", 8, 0.6, "rotate", 9), (0.6, "solarize", 5, 0.6, "autocontrast", 5),
    (0.8, "equalize", 8, 0.6, "equalize", 3), (0.6, "posterize", 7, 0.6, "posterize", 6),
    (0.4, "equalize", 7, 0.2, "solarize", 4), (0.4, "equalize", 4, 0.8, "rotate", 8),
    (0.6, "solarize", 3, 0.6, "equalize", 7), (0.8, "posterize", 5, 1.0, "equalize", 2),
    (0.2, "rotate", 3, 0.6, "solarize", 8), (0.6, "equalize", 8, 0.4, "posterize", 6),
    (0.8, "rotate", 8, 0.4, "color", 0), (0.4, "rotate", 9, 0.6, "equalize", 2),
    (0.0, "equalize", 7, 0.8, "equalize", 8), (0.6, "invert", 4, 1.0, "equalize", 8),
    (0.6, "color", 4, 1.0, "contrast", 8), (0.8, "rotate", 8, 1.0, "color", 2),
    (0.8, "color", 8, 0.8, "solarize", 7), (0.4, "sharpness", 7, 0.6, "invert", 8),
    (0.6, "shearX", 5, 1.0, "equalize", 9), (0.4, "color", 0, 0.6, "equalize", 3),
]
IMAGENET_POLICY += [IMAGENET_POLICY[i] for i in (4, 1, 13, 14, 2)]


def _fill(fillcolor: Any, name: str) -> tuple[int, ...]:
    try:
        fill = tuple(int(c) for c in fillcolor)
    except TypeError:
        raise OperatorParamError(f"{name}: fillcolor must be a sequence such as [128, 128, 128], "
                                 f"got {fillcolor!r}") from None
    return fill


@register_operator
class AutoAugment(Operator):
    """PaddleClas's AutoAugment: one of the 25 ImageNetPolicy sub-policies, chosen uniformly per image; each
    sub-policy applies its two operations with their probabilities. HWC uint8 in, HWC uint8 out."""

    def __init__(self, fillcolor: list[int] | tuple[int, ...] = (128, 128, 128)) -> None:
        super().__init__()
        self.fillcolor = _fill(fillcolor, "AutoAugment")
        ranges = _policy_ranges()
        self._ops = _pc_ops()
        self.policies = [(p1, o1, ranges[o1][m1], p2, o2, ranges[o2][m2])
                         for p1, o1, m1, p2, o2, m2 in IMAGENET_POLICY]

    def apply_policy(self, img: Any, index: int) -> np.ndarray:
        """Sub-policy `index` (mod 25) on `img`, its probabilities and signs drawn from `self.rng`."""
        p1, o1, m1, p2, o2, m2 = self.policies[index % len(self.policies)]
        pil = to_pil(img)
        if self.rng.random() < p1:
            pil = self._ops[o1](pil, m1, self.rng, self.fillcolor)
        if self.rng.random() < p2:
            pil = self._ops[o2](pil, m2, self.rng, self.fillcolor)
        return to_numpy(pil)

    def __call__(self, img: Any) -> np.ndarray:
        return self.apply_policy(img, self.rng.randint(0, len(self.policies) - 1))

    def __repr__(self) -> str:
        return "AutoAugment(ImageNetPolicy)"


@register_operator
class RandAugment(Operator):
    """PaddleClas's RandAugment: `num_layers` operations, each chosen uniformly (with replacement) from 14,
    applied at the fixed level magnitude / 10 of each operation's range. HWC uint8 in, HWC uint8 out.

    As in PaddleClas, magnitude 0 is not the identity: posterize keeps 0 bits (black), solarize at 0 inverts,
    and autocontrast/equalize/invert ignore the magnitude."""

    MAX_LEVEL = 10

    def __init__(self, num_layers: int = 2, magnitude: float = 5,
                 fillcolor: list[int] | tuple[int, ...] = (128, 128, 128)) -> None:
        super().__init__()
        if int(num_layers) != num_layers or num_layers < 0:
            raise OperatorParamError(f"RandAugment: num_layers must be an integer >= 0, got {num_layers!r}")
        if not 0 <= magnitude <= self.MAX_LEVEL:
            raise OperatorParamError(f"RandAugment: magnitude must be in [0, {self.MAX_LEVEL}], got {magnitude!r}")
        self.num_layers = int(num_layers)
        self.magnitude = magnitude
        self.fillcolor = _fill(fillcolor, "RandAugment")
        level = magnitude / self.MAX_LEVEL
        self.level_map = {
            "shearX": 0.3 * level, "shearY": 0.3 * level,
            "translateX": 150.0 / 331 * level, "translateY": 150.0 / 331 * level,
            "rotate": 30 * level, "color": 0.9 * level, "posterize": int(4.0 * level),
            "solarize": 256.0 * level, "contrast": 0.9 * level, "sharpness": 0.9 * level,
            "brightness": 0.9 * level, "autocontrast": 0, "equalize": 0, "invert": 0,
        }
        self.op_names = list(self.level_map)
        self._ops = _pc_ops()

    def apply_op(self, img: Any, name: str) -> np.ndarray:
        """Operation `name` at this operator's level (signs drawn from `self.rng`)."""
        return to_numpy(self._ops[name](to_pil(img), self.level_map[name], self.rng, self.fillcolor))

    def __call__(self, img: Any) -> np.ndarray:
        pil = to_pil(img)
        for _ in range(self.num_layers):
            name = self.op_names[self.rng.randrange(len(self.op_names))]
            pil = self._ops[name](pil, self.level_map[name], self.rng, self.fillcolor)
        return to_numpy(pil)

    def __repr__(self) -> str:
        return f"RandAugment(num_layers={self.num_layers}, magnitude={self.magnitude})"
