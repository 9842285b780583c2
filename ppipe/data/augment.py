"""PaddleClas-compatible augmentation policies: AutoAugment, RandAugment, TimmAutoAugment, the masking
operators RandomErasing, Cutout, GridMask and HideAndSeek, and the colour operators ColorJitter and PCALighting.

Semantics follow PaddleClas 2.6 (`ppcls/data/preprocess/ops/{autoaugment,randaugment,timm_autoaugment,
random_erasing,cutout,grid,hide_and_seek}.py` and the numpy<->PIL wrappers in
`ppcls/data/preprocess/__init__.py`); this is our own code.

* AutoAugment, RandAugment and TimmAutoAugment take an HWC uint8 RGB array (or a PIL image) and return an HWC
  uint8 array; they go before NormalizeImage, as in PaddleClas configs.
* RandomErasing takes the float HWC array NormalizeImage(order='') makes and returns it with one rectangle
  erased; it goes after NormalizeImage and before ToCHWImage, as in PaddleClas configs (it indexes
  shape[0] as height, shape[1] as width and shape[2] as channels).
* Cutout, GridMask and HideAndSeek go there too and mask square regions with zeros (the mean pixel once
  normalised); they return a copy of the dtype and shape they are given.

Every random draw comes from the operator's `self.rng` (the pipeline's shared `random.Random`, see
`transforms.Compose`), never from the global `random`/`numpy.random` state, so a seeded pipeline reproduces.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any, Callable

import numpy as np

from ppipe.data.transforms import Operator, OperatorParamError, _eval_number, register_operator

__all__ = ["AutoAugment", "RandAugment", "TimmAutoAugment", "RandomErasing", "Cutout", "GridMask", "HideAndSeek",
           "ColorJitter", "PCALighting"]


def _pil():
    from PIL import Image, ImageEnhance, ImageOps

    return Image, ImageEnhance, ImageOps


def _to_pil(img: Any):
    Image, _, _ = _pil()
    if isinstance(img, Image.Image):
        return img
    return Image.fromarray(np.ascontiguousarray(img))


def _to_numpy(img: Any) -> np.ndarray:
    Image, _, _ = _pil()
    return np.array(img) if isinstance(img, Image.Image) else img


# ------------------------------------------------------------------ PaddleClas ImageNetPolicy / RandAugment ops
# Each takes (PIL image, magnitude, rng, fillcolor). Signs are drawn from rng, as PaddleClas draws
# random.choice([-1, 1]) inside each op.

def _posterize(img, bits: int):
    """Keep the top `bits` bits of each channel; bits 0 gives black, as older Pillow (which PaddleClas's
    configs ran on) did; Pillow >= 11 rejects bits outside 1..8."""
    bits = int(bits)
    if bits >= 8:
        return img
    mask = ~(2 ** (8 - bits) - 1) & 0xFF
    lut = [i & mask for i in range(256)]
    return img.point(lut * len(img.getbands()))


def _sign(rng: random.Random) -> int:
    return rng.choice([-1, 1])


def _rotate_with_fill(img, degrees: float):
    """Rotate counter-clockwise, corners filled with grey 128 (PaddleClas ignores `fillcolor` here)."""
    Image, _, _ = _pil()
    rot = img.convert("RGBA").rotate(degrees)
    return Image.composite(rot, Image.new("RGBA", rot.size, (128,) * 4), rot).convert(img.mode)


def _affine(img, coeffs, fillcolor, resample=None):
    Image, _, _ = _pil()
    if resample is None:
        return img.transform(img.size, Image.Transform.AFFINE, coeffs, fillcolor=fillcolor)
    return img.transform(img.size, Image.Transform.AFFINE, coeffs, resample, fillcolor=fillcolor)


def _pc_ops() -> dict[str, Callable]:
    Image, ImageEnhance, ImageOps = _pil()
    bicubic = Image.Resampling.BICUBIC
    return {
        "shearX": lambda img, m, rng, fill: _affine(img, (1, m * _sign(rng), 0, 0, 1, 0), fill, bicubic),
        "shearY": lambda img, m, rng, fill: _affine(img, (1, 0, 0, m * _sign(rng), 1, 0), fill, bicubic),
        "translateX": lambda img, m, rng, fill: _affine(img, (1, 0, m * img.size[0] * _sign(rng), 0, 1, 0), fill),
        "translateY": lambda img, m, rng, fill: _affine(img, (1, 0, 0, 0, 1, m * img.size[1] * _sign(rng)), fill),
        "rotate": lambda img, m, rng, fill: _rotate_with_fill(img, m),
        "color": lambda img, m, rng, fill: ImageEnhance.Color(img).enhance(1 + m * _sign(rng)),
        "posterize": lambda img, m, rng, fill: _posterize(img, m),
        "solarize": lambda img, m, rng, fill: ImageOps.solarize(img, m),
        "contrast": lambda img, m, rng, fill: ImageEnhance.Contrast(img).enhance(1 + m * _sign(rng)),
        "sharpness": lambda img, m, rng, fill: ImageEnhance.Sharpness(img).enhance(1 + m * _sign(rng)),
        "brightness": lambda img, m, rng, fill: ImageEnhance.Brightness(img).enhance(1 + m * _sign(rng)),
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


# (p1, op1, magnitude index 1, p2, op2, magnitude index 2): PaddleClas's ImageNetPolicy, in its order.
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
    (0.4, "equalize", 7, 0.2, "solarize", 4), (0.6, "solarize", 5, 0.6, "autocontrast", 5),
    (0.6, "invert", 4, 1.0, "equalize", 8), (0.6, "color", 4, 1.0, "contrast", 8),
    (0.8, "equalize", 8, 0.6, "equalize", 3),
]


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
        pil = _to_pil(img)
        if self.rng.random() < p1:
            pil = self._ops[o1](pil, m1, self.rng, self.fillcolor)
        if self.rng.random() < p2:
            pil = self._ops[o2](pil, m2, self.rng, self.fillcolor)
        return _to_numpy(pil)

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
        return _to_numpy(self._ops[name](_to_pil(img), self.level_map[name], self.rng, self.fillcolor))

    def __call__(self, img: Any) -> np.ndarray:
        pil = _to_pil(img)
        for _ in range(self.num_layers):
            name = self.op_names[self.rng.randrange(len(self.op_names))]
            pil = self._ops[name](pil, self.level_map[name], self.rng, self.fillcolor)
        return _to_numpy(pil)

    def __repr__(self) -> str:
        return f"RandAugment(num_layers={self.num_layers}, magnitude={self.magnitude})"


# ------------------------------------------------------------------------------------ timm (TimmAutoAugment)

_MAX_LEVEL = 10.0
IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)


def _t_resample(kw: dict, rng: random.Random):
    r = kw["resample"]
    return rng.choice(r) if isinstance(r, (list, tuple)) else r


def _t_affine(img, coeffs, kw, rng):
    Image, _, _ = _pil()
    return img.transform(img.size, Image.Transform.AFFINE, coeffs, resample=_t_resample(kw, rng),
                         fillcolor=kw["fillcolor"])


def _t_rotate(img, degrees, kw, rng):
    return img.rotate(degrees, resample=_t_resample(kw, rng), fillcolor=kw["fillcolor"])


def _t_solarize_add(img, add, thresh=128):
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    if img.mode in ("L", "RGB"):
        return img.point(lut * 3 if img.mode == "RGB" else lut)
    return img


def _timm_ops() -> dict[str, Callable]:
    """name -> fn(img, args, kwargs, rng)."""
    _, ImageEnhance, ImageOps = _pil()
    enh = {"Color": ImageEnhance.Color, "Contrast": ImageEnhance.Contrast, "Brightness": ImageEnhance.Brightness,
           "Sharpness": ImageEnhance.Sharpness}
    ops: dict[str, Callable] = {
        "AutoContrast": lambda img, a, kw, rng: ImageOps.autocontrast(img),
        "Equalize": lambda img, a, kw, rng: ImageOps.equalize(img),
        "Invert": lambda img, a, kw, rng: ImageOps.invert(img),
        "Rotate": lambda img, a, kw, rng: _t_rotate(img, a[0], kw, rng),
        "SolarizeAdd": lambda img, a, kw, rng: _t_solarize_add(img, a[0]),
        "ShearX": lambda img, a, kw, rng: _t_affine(img, (1, a[0], 0, 0, 1, 0), kw, rng),
        "ShearY": lambda img, a, kw, rng: _t_affine(img, (1, 0, 0, a[0], 1, 0), kw, rng),
        "TranslateX": lambda img, a, kw, rng: _t_affine(img, (1, 0, a[0], 0, 1, 0), kw, rng),
        "TranslateY": lambda img, a, kw, rng: _t_affine(img, (1, 0, 0, 0, 1, a[0]), kw, rng),
        "TranslateXRel": lambda img, a, kw, rng: _t_affine(img, (1, 0, a[0] * img.size[0], 0, 1, 0), kw, rng),
        "TranslateYRel": lambda img, a, kw, rng: _t_affine(img, (1, 0, 0, 0, 1, a[0] * img.size[1]), kw, rng),
    }
    for base in ("Posterize", "PosterizeIncreasing", "PosterizeOriginal"):
        ops[base] = lambda img, a, kw, rng: _posterize(img, a[0])
    for base in ("Solarize", "SolarizeIncreasing"):
        ops[base] = lambda img, a, kw, rng: ImageOps.solarize(img, a[0])
    for base, cls in enh.items():
        for name in (base, base + "Increasing"):
            ops[name] = (lambda c: lambda img, a, kw, rng: c(img).enhance(a[0]))(cls)
    return ops


def _negate(v: float, rng: random.Random) -> float:
    return -v if rng.random() > 0.5 else v


def _timm_level_fns() -> dict[str, Callable | None]:
    """name -> fn(level, hparams, rng) -> args tuple (None: the op takes no argument)."""
    enhance = lambda lv, hp, rng: ((lv / _MAX_LEVEL) * 1.8 + 0.1,)  # noqa: E731
    enhance_inc = lambda lv, hp, rng: (1.0 + _negate((lv / _MAX_LEVEL) * 0.9, rng),)  # noqa: E731
    posterize = lambda lv, hp, rng: (int((lv / _MAX_LEVEL) * 4),)  # noqa: E731
    solarize = lambda lv, hp, rng: (int((lv / _MAX_LEVEL) * 256),)  # noqa: E731
    fns: dict[str, Callable | None] = {
        "AutoContrast": None, "Equalize": None, "Invert": None,
        "Rotate": lambda lv, hp, rng: (_negate((lv / _MAX_LEVEL) * 30.0, rng),),
        "Posterize": posterize,
        "PosterizeIncreasing": lambda lv, hp, rng: (4 - posterize(lv, hp, rng)[0],),
        "PosterizeOriginal": lambda lv, hp, rng: (posterize(lv, hp, rng)[0] + 4,),
        "Solarize": solarize,
        "SolarizeIncreasing": lambda lv, hp, rng: (256 - solarize(lv, hp, rng)[0],),
        "SolarizeAdd": lambda lv, hp, rng: (int((lv / _MAX_LEVEL) * 110),),
        "ShearX": lambda lv, hp, rng: (_negate((lv / _MAX_LEVEL) * 0.3, rng),),
        "ShearY": lambda lv, hp, rng: (_negate((lv / _MAX_LEVEL) * 0.3, rng),),
        "TranslateX": lambda lv, hp, rng: (_negate((lv / _MAX_LEVEL) * float(hp["translate_const"]), rng),),
        "TranslateY": lambda lv, hp, rng: (_negate((lv / _MAX_LEVEL) * float(hp["translate_const"]), rng),),
        "TranslateXRel": lambda lv, hp, rng: (_negate((lv / _MAX_LEVEL) * hp.get("translate_pct", 0.45), rng),),
        "TranslateYRel": lambda lv, hp, rng: (_negate((lv / _MAX_LEVEL) * hp.get("translate_pct", 0.45), rng),),
    }
    for base in ("Color", "Contrast", "Brightness", "Sharpness"):
        fns[base] = enhance
        fns[base + "Increasing"] = enhance_inc
    return fns


class _TimmOp:
    """timm's AugmentOp: with probability `prob`, the op at `magnitude` (optionally jittered by magnitude_std)."""

    def __init__(self, name: str, prob: float, magnitude: float, hparams: dict[str, Any],
                 ops: dict[str, Callable], level_fns: dict[str, Callable | None]) -> None:
        self.name, self.prob, self.magnitude = name, prob, magnitude
        self.hparams = dict(hparams)
        self.fn, self.level_fn = ops[name], level_fns[name]
        self.kwargs = {"fillcolor": hparams.get("img_mean", (128, 128, 128)),
                       "resample": hparams.get("interpolation", ("bilinear", "bicubic"))}
        self.magnitude_std = self.hparams.get("magnitude_std", 0)

    def __call__(self, img, rng: random.Random):
        if self.prob < 1.0 and rng.random() > self.prob:
            return img
        magnitude = self.magnitude
        if self.magnitude_std and self.magnitude_std > 0:
            magnitude = rng.gauss(magnitude, self.magnitude_std)
        magnitude = min(_MAX_LEVEL, max(0.0, magnitude))
        args = self.level_fn(magnitude, self.hparams, rng) if self.level_fn is not None else ()
        return self.fn(img, args, self.kwargs, rng)

    def __repr__(self) -> str:
        return f"{self.name}(p={self.prob}, m={self.magnitude})"


_RAND_TRANSFORMS = ["AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd",
                    "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel",
                    "TranslateYRel"]
_RAND_INCREASING_TRANSFORMS = ["AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing",
                               "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing",
                               "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY",
                               "TranslateXRel", "TranslateYRel"]
_RAND_CHOICE_WEIGHTS_0 = {"Rotate": 0.3, "ShearX": 0.2, "ShearY": 0.2, "TranslateXRel": 0.1,
                          "TranslateYRel": 0.1, "Color": 0.025, "Sharpness": 0.025, "AutoContrast": 0.025,
                          "Solarize": 0.005, "SolarizeAdd": 0.005, "Contrast": 0.005, "Brightness": 0.005,
                          "Equalize": 0.005, "Posterize": 0, "Invert": 0}

_AA_POLICY_V0 = [
    [("Equalize", 0.8, 1), ("ShearY", 0.8, 4)], [("Color", 0.4, 9), ("Equalize", 0.6, 3)],
    [("Color", 0.4, 1), ("Rotate", 0.6, 8)], [("Solarize", 0.8, 3), ("Equalize", 0.4, 7)],
    [("Solarize", 0.4, 2), ("Solarize", 0.6, 2)], [("Color", 0.2, 0), ("Equalize", 0.8, 8)],
    [("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3)], [("ShearX", 0.2, 9), ("Rotate", 0.6, 8)],
    [("Color", 0.6, 1), ("Equalize", 1.0, 2)], [("Invert", 0.4, 9), ("Rotate", 0.6, 0)],
    [("Equalize", 1.0, 9), ("ShearY", 0.6, 3)], [("Color", 0.4, 7), ("Equalize", 0.6, 0)],
    [("Posterize", 0.4, 6), ("AutoContrast", 0.4, 7)], [("Solarize", 0.6, 8), ("Color", 0.6, 9)],
    [("Solarize", 0.2, 4), ("Rotate", 0.8, 9)], [("Rotate", 1.0, 7), ("TranslateYRel", 0.8, 9)],
    [("ShearX", 0.0, 0), ("Solarize", 0.8, 4)], [("ShearY", 0.8, 0), ("Color", 0.6, 4)],
    [("Color", 1.0, 0), ("Rotate", 0.6, 2)], [("Equalize", 0.8, 4), ("Equalize", 0.0, 8)],
    [("Equalize", 1.0, 4), ("AutoContrast", 0.6, 2)], [("ShearY", 0.4, 7), ("SolarizeAdd", 0.6, 7)],
    [("Posterize", 0.8, 2), ("Solarize", 0.6, 10)], [("Solarize", 0.6, 8), ("Equalize", 0.6, 1)],
    [("Color", 0.8, 6), ("Rotate", 0.4, 5)],
]
_AA_POLICY_ORIGINAL = [
    [("PosterizeOriginal", 0.4, 8), ("Rotate", 0.6, 9)], [("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)],
    [("Equalize", 0.8, 8), ("Equalize", 0.6, 3)], [("PosterizeOriginal", 0.6, 7), ("PosterizeOriginal", 0.6, 6)],
    [("Equalize", 0.4, 7), ("Solarize", 0.2, 4)], [("Equalize", 0.4, 4), ("Rotate", 0.8, 8)],
    [("Solarize", 0.6, 3), ("Equalize", 0.6, 7)], [("PosterizeOriginal", 0.8, 5), ("Equalize", 1.0, 2)],
    [("Rotate", 0.2, 3), ("Solarize", 0.6, 8)], [("Equalize", 0.6, 8), ("PosterizeOriginal", 0.4, 6)],
    [("Rotate", 0.8, 8), ("Color", 0.4, 0)], [("Rotate", 0.4, 9), ("Equalize", 0.6, 2)],
    [("Equalize", 0.0, 7), ("Equalize", 0.8, 8)], [("Invert", 0.6, 4), ("Equalize", 1.0, 8)],
    [("Color", 0.6, 4), ("Contrast", 1.0, 8)], [("Rotate", 0.8, 8), ("Color", 1.0, 2)],
    [("Color", 0.8, 8), ("Solarize", 0.8, 7)], [("Sharpness", 0.4, 7), ("Invert", 0.6, 8)],
    [("ShearX", 0.6, 5), ("Equalize", 1.0, 9)], [("Color", 0.4, 0), ("Equalize", 0.6, 3)],
    [("Equalize", 0.4, 7), ("Solarize", 0.2, 4)], [("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)],
    [("Invert", 0.6, 4), ("Equalize", 1.0, 8)], [("Color", 0.6, 4), ("Contrast", 1.0, 8)],
    [("Equalize", 0.8, 8), ("Equalize", 0.6, 3)],
]


def _posterize_increasing(policy):
    return [[("PosterizeIncreasing" if n.startswith("Posterize") else n, p, m) for n, p, m in sp] for sp in policy]


_AA_POLICIES = {"v0": _AA_POLICY_V0, "v0r": _posterize_increasing(_AA_POLICY_V0),
                "original": _AA_POLICY_ORIGINAL, "originalr": _posterize_increasing(_AA_POLICY_ORIGINAL)}


def _config_sections(config: list[str], name: str, allowed: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for c in config:
        cs = re.split(r"(\d.*)", c)
        if len(cs) < 2:
            continue
        key, val = cs[:2]
        if key not in allowed:
            raise OperatorParamError(f"TimmAutoAugment: unknown {name} config section {c!r} in config_str; "
                                     f"known: {', '.join(allowed)}")
        out.append((key, val))
    return out


@register_operator
class TimmAutoAugment(Operator):
    """PaddleClas's TimmAutoAugment (timm's RandAugment / AutoAugment), applied with probability `prob`.

    config_str: 'rand-m9-mstd0.5-inc1' style (m magnitude 0..10 [10], n layers [2], mstd magnitude noise,
    inc1 severity-increasing ops, w0 weighted op choice without replacement), or an AutoAugment policy
    'v0' | 'v0r' | 'original' | 'originalr' with an optional '-mstd<x>'. AugMix ('augmix-...') is not supported.
    `interpolation`: 'bicubic' | 'bilinear' | 'lanczos' | 'hamming' | 'random' (bilinear or bicubic per op).
    `img_size` sets the absolute translate range; `mean` (0..1) sets the fill colour. HWC uint8 in and out.
    """

    def __init__(self, config_str: str = "rand-m9-mstd0.5-inc1", interpolation: str = "bicubic",
                 img_size: int | list[int] = 224, mean: list[float] | tuple[float, ...] = IMAGENET_DEFAULT_MEAN,
                 prob: float = 1.0) -> None:
        super().__init__()
        Image, _, _ = _pil()
        if not isinstance(config_str, str) or not config_str:
            raise OperatorParamError(f"TimmAutoAugment: config_str must be a non-empty string, got {config_str!r}")
        self.config_str = config_str
        self.prob = float(prob)
        size_min = min(img_size) if isinstance(img_size, (list, tuple)) else img_size
        hparams: dict[str, Any] = {"translate_const": int(size_min * 0.45),
                                   "img_mean": tuple(min(255, round(255 * x)) for x in mean)}
        interps = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
                   "hamming": Image.Resampling.HAMMING, "bilinear": Image.Resampling.BILINEAR}
        if interpolation and interpolation != "random":
            hparams["interpolation"] = interps.get(str(interpolation).lower(), Image.Resampling.BILINEAR)
        else:
            hparams["interpolation"] = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)
        ops, level_fns = _timm_ops(), _timm_level_fns()
        config = config_str.split("-")
        self.choice_weights: list[float] | None = None
        if config[0] == "rand":
            magnitude, self.num_layers, weight_idx, names = _MAX_LEVEL, 2, None, _RAND_TRANSFORMS
            for key, val in _config_sections(config[1:], "RandAugment", ("mstd", "inc", "m", "n", "w")):
                if key == "mstd":
                    hparams.setdefault("magnitude_std", float(val))
                elif key == "inc":
                    names = _RAND_INCREASING_TRANSFORMS if int(val) else _RAND_TRANSFORMS
                elif key == "m":
                    magnitude = int(val)
                elif key == "n":
                    self.num_layers = int(val)
                else:
                    weight_idx = int(val)
                    if weight_idx != 0:
                        raise OperatorParamError(f"TimmAutoAugment: only weight set w0 exists, got w{val}")
            self.kind = "rand"
            self.rand_ops = [_TimmOp(n, 0.5, magnitude, hparams, ops, level_fns) for n in names]
            if weight_idx is not None:
                w = np.array([_RAND_CHOICE_WEIGHTS_0[n] for n in _RAND_TRANSFORMS], dtype=np.float64)
                self.choice_weights = (w / w.sum()).tolist()
        elif config[0] in _AA_POLICIES:
            for key, val in _config_sections(config[1:], "AutoAugment", ("mstd",)):
                hparams.setdefault("magnitude_std", float(val))
            self.kind = "auto"
            self.policy = [[_TimmOp(n, p, m, hparams, ops, level_fns) for n, p, m in sp]
                           for sp in _AA_POLICIES[config[0]]]
        elif config[0] == "augmix":
            raise OperatorParamError("TimmAutoAugment: AugMix config strings ('augmix-...') are not supported")
        else:
            raise OperatorParamError(
                f"TimmAutoAugment: config_str {config_str!r} must start with 'rand' or an AutoAugment policy "
                f"({', '.join(_AA_POLICIES)})")
        self.hparams = hparams

    def _weighted_sample(self, k: int) -> list[_TimmOp]:
        """k ops drawn without replacement by `choice_weights` (timm: np.random.choice(replace=False, p=w))."""
        idx = list(range(len(self.rand_ops)))
        w = list(self.choice_weights or [])
        out = []
        for _ in range(min(k, sum(1 for x in w if x > 0))):
            j = self.rng.choices(range(len(idx)), weights=w)[0]
            out.append(self.rand_ops[idx.pop(j)])
            w.pop(j)
        return out

    def __call__(self, img: Any) -> np.ndarray:
        pil = _to_pil(img)
        if self.rng.random() < self.prob:
            if self.kind == "rand":
                if self.choice_weights is None:
                    chosen = [self.rand_ops[self.rng.randrange(len(self.rand_ops))] for _ in range(self.num_layers)]
                else:
                    chosen = self._weighted_sample(self.num_layers)
            else:
                chosen = self.policy[self.rng.randrange(len(self.policy))]
            for op in chosen:
                pil = op(pil, self.rng)
        return _to_numpy(pil)

    def __repr__(self) -> str:
        return f"TimmAutoAugment({self.config_str!r}, prob={self.prob})"


# ------------------------------------------------------------------------------------------ RandomErasing

def _number(value: Any, op: str, name: str) -> float:
    if isinstance(value, str):
        try:
            return _eval_number(value)
        except OperatorParamError:
            raise OperatorParamError(f"{op}: {name} {value!r} is not a number or arithmetic expression") from None
    return float(value)


@register_operator
class RandomErasing(Operator):
    """PaddleClas's RandomErasing (Zhong et al. 2017): with probability EPSILON, erase one rectangle of area
    uniform in [sl, sh] of the image and aspect ratio in [r1, 1/r1] (log-uniform when use_log_aspect), trying
    `attempt` times to fit one. mode 'const' fills with `mean`, 'rand' with one normal draw per channel,
    'pixel' with per-pixel normal draws. Input: the HWC float array NormalizeImage(order='') makes (a copy is
    returned; the input is not modified). Numbers may be strings like '1.0/3.0', as in PaddleClas configs."""

    MODES = ("const", "rand", "pixel")

    def __init__(self, EPSILON: float | str = 0.5, sl: float | str = 0.02, sh: float | str = 0.4,
                 r1: float | str = 0.3, mean: list[float] | tuple[float, ...] = (0.0, 0.0, 0.0), attempt: int = 100,
                 use_log_aspect: bool = False, mode: str = "const") -> None:
        super().__init__()
        self.EPSILON = _number(EPSILON, "RandomErasing", "EPSILON")
        self.sl = _number(sl, "RandomErasing", "sl")
        self.sh = _number(sh, "RandomErasing", "sh")
        r1 = _number(r1, "RandomErasing", "r1")
        if r1 <= 0:
            raise OperatorParamError(f"RandomErasing: r1 must be > 0, got {r1!r}")
        if mode not in self.MODES:
            raise OperatorParamError(f"RandomErasing: mode must be one of {', '.join(self.MODES)}, got {mode!r}")
        self.r1 = (math.log(r1), math.log(1 / r1)) if use_log_aspect else (r1, 1 / r1)
        self.use_log_aspect = use_log_aspect
        self.attempt = int(attempt)
        self.mode = mode
        self.mean = [float(m) for m in mean]

    def _pixels(self, h: int, w: int, c: int) -> np.ndarray:
        if self.mode == "const":
            return np.asarray(self.mean, dtype=np.float64)
        gen = np.random.default_rng(self.rng.getrandbits(64))
        return gen.normal(size=(1, 1, 3) if self.mode == "rand" else (h, w, c))

    def _erase_size(self, shape: tuple[int, ...]) -> tuple[int, int] | None:
        """(height, width) of the rectangle to erase in an image of `shape`, or None (no erasing)."""
        if self.rng.random() > self.EPSILON:
            return None
        area = shape[0] * shape[1]
        for _ in range(self.attempt):
            target_area = self.rng.uniform(self.sl, self.sh) * area
            aspect_ratio = self.rng.uniform(*self.r1)
            if self.use_log_aspect:
                aspect_ratio = math.exp(aspect_ratio)
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if w < shape[1] and h < shape[0]:
                return h, w
        return None

    def __call__(self, img: Any) -> np.ndarray:
        img = np.array(img, copy=True)
        if img.ndim != 3:
            raise ValueError(f"RandomErasing: expected an HWC image, got shape {img.shape}")
        size = self._erase_size(img.shape)
        if size is None:
            return img
        h, w = size
        pixels = self._pixels(h, w, img.shape[2])  # drawn before the placement, as in PaddleClas
        top = self.rng.randint(0, img.shape[0] - h)
        left = self.rng.randint(0, img.shape[1] - w)
        if img.shape[2] == 3:
            img[top:top + h, left:left + w, :] = pixels
        else:
            img[top:top + h, left:left + w, 0] = np.asarray(pixels)[..., 0] if np.ndim(pixels) == 3 else pixels[0]
        return img

    def __repr__(self) -> str:
        return f"RandomErasing(EPSILON={self.EPSILON}, sl={self.sl}, sh={self.sh}, mode={self.mode!r})"


# ---------------------------------------------------------------------------- Cutout, GridMask, HideAndSeek
# PaddleClas's configs put these after NormalizeImage(order=''), on the HWC float array, where zero is the mean pixel.
# Its GridMask and HideAndSeek code indexes that array as CHW, which masks image columns and channels instead of the
# square patches their papers describe; ppipe masks the patches, on HWC input (CHW and HW are accepted too).

def _hwc_copy(img: Any, op: str) -> tuple[np.ndarray, np.ndarray]:
    """A copy of `img` and an HWC view of that copy: writes through the view land in the copy."""
    out = np.array(img, copy=True)
    if out.ndim == 2:
        return out, out[:, :, None]
    if out.ndim == 3 and out.shape[2] in (1, 3, 4):
        return out, out
    if out.ndim == 3 and out.shape[0] in (1, 3, 4):
        return out, np.moveaxis(out, 0, -1)
    raise ValueError(f"{op}: expected an HWC, CHW or HW image, got shape {out.shape}")


def _positive_int(value: Any, op: str, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise OperatorParamError(f"{op}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@register_operator
class Cutout(Operator):
    """PaddleClas's Cutout (DeVries & Taylor 2017, arXiv:1708.04552): fill `n_holes` squares of side `length`,
    each centred on a uniformly drawn pixel and clipped at the borders (so holes may overlap or be cut off), with
    `fill_value` (default zeros: the mean pixel after NormalizeImage); `fill_value: none` fills each hole with a
    random colour in 0..255 per channel, as PaddleClas does."""

    def __init__(self, n_holes: int = 1, length: int = 112,
                 fill_value: list[float] | tuple[float, ...] | float | str | None = (0, 0, 0)) -> None:
        super().__init__()
        self.n_holes = _positive_int(n_holes, "Cutout", "n_holes", 0)
        self.length = _positive_int(length, "Cutout", "length", 0)
        if fill_value is None or fill_value == "none":
            self.fill_value = None
        else:
            try:
                self.fill_value = [float(v) for v in np.atleast_1d(fill_value)]
            except (TypeError, ValueError):
                raise OperatorParamError(f"Cutout: fill_value must be numbers or 'none', got {fill_value!r}") from None

    def __call__(self, img: Any) -> np.ndarray:
        out, hwc = _hwc_copy(img, "Cutout")
        h, w, c = hwc.shape
        half = self.length // 2
        for _ in range(self.n_holes):
            y, x = self.rng.randrange(h), self.rng.randrange(w)
            fill = self.fill_value if self.fill_value is not None else [self.rng.randint(0, 255) for _ in range(c)]
            hwc[max(y - half, 0):min(y + half, h), max(x - half, 0):min(x + half, w)] = fill
        return out

    def __repr__(self) -> str:
        return f"Cutout(n_holes={self.n_holes}, length={self.length}, fill_value={self.fill_value})"


@register_operator
class GridMask(Operator):
    """PaddleClas's GridMask (Chen et al. 2020, arXiv:2001.04086): with probability `prob`, zero bands of width
    round(d * ratio) every d pixels across both rows and columns (d drawn from [d1, d2), the grid's offsets from
    [0, d)), drawn on a 1.5x canvas rotated by a whole number of degrees in [0, rotate) and centre-cropped;
    `mode` 1 keeps the bands and zeroes the rest.

    PaddleClas scales `prob` by current epoch / total epochs through module globals its trainer never advances,
    so its GridMask masks nothing; ppipe applies `prob` as given."""

    def __init__(self, d1: int = 96, d2: int = 224, rotate: int = 1, ratio: float = 0.5, mode: int = 0,
                 prob: float = 1.0) -> None:
        super().__init__()
        self.d1 = _positive_int(d1, "GridMask", "d1")
        self.d2 = _positive_int(d2, "GridMask", "d2")
        if self.d2 <= self.d1:
            raise OperatorParamError(f"GridMask: d2 must be greater than d1 (d is drawn from [d1, d2)), got "
                                     f"d1={d1}, d2={d2}")
        self.rotate = _positive_int(rotate, "GridMask", "rotate")
        self.ratio = _number(ratio, "GridMask", "ratio")
        if mode not in (0, 1):
            raise OperatorParamError(f"GridMask: mode must be 0 (zero the grid) or 1 (keep the grid), got {mode!r}")
        self.mode = mode
        self.prob = _number(prob, "GridMask", "prob")

    def mask(self, h: int, w: int) -> np.ndarray:
        """A fresh (h, w) uint8 mask: 1 keeps a pixel, 0 hides it."""
        Image, _, _ = _pil()
        hh, ww = int(1.5 * h), int(1.5 * w)
        d = self.rng.randrange(self.d1, self.d2)
        band = int(d * self.ratio + 0.5)
        canvas = np.ones((hh, ww), np.uint8)
        st_h, st_w = self.rng.randrange(d), self.rng.randrange(d)
        for i in range(-1, hh // d + 1):
            canvas[max(min(d * i + st_h, hh), 0):max(min(d * i + st_h + band, hh), 0), :] = 0
        for i in range(-1, ww // d + 1):
            canvas[:, max(min(d * i + st_w, ww), 0):max(min(d * i + st_w + band, ww), 0)] = 0
        canvas = np.asarray(Image.fromarray(canvas).rotate(self.rng.randrange(self.rotate)))
        top, left = (hh - h) // 2, (ww - w) // 2
        canvas = canvas[top:top + h, left:left + w]
        return 1 - canvas if self.mode == 1 else canvas

    def __call__(self, img: Any) -> np.ndarray:
        out, hwc = _hwc_copy(img, "GridMask")
        if self.rng.random() > self.prob:
            return out
        hwc[self.mask(*hwc.shape[:2]) == 0] = 0
        return out

    def __repr__(self) -> str:
        return (f"GridMask(d1={self.d1}, d2={self.d2}, rotate={self.rotate}, ratio={self.ratio}, mode={self.mode}, "
                f"prob={self.prob})")


@register_operator
class HideAndSeek(Operator):
    """PaddleClas's HideAndSeek (Singh & Lee 2017, arXiv:1704.04232): split the image into square patches of a
    side drawn from `grid_sizes` (0: leave the image as it is) and zero each patch with probability `hide_prob`.
    PaddleClas takes no parameters and fixes grid_sizes [0, 16, 32, 44, 56] and hide_prob 0.5, ppipe's defaults."""

    def __init__(self, grid_sizes: list[int] | tuple[int, ...] = (0, 16, 32, 44, 56), hide_prob: float = 0.5) -> None:
        super().__init__()
        if not isinstance(grid_sizes, (list, tuple)) or not grid_sizes:
            raise OperatorParamError(f"HideAndSeek: grid_sizes must be a non-empty list, got {grid_sizes!r}")
        self.grid_sizes = [_positive_int(g, "HideAndSeek", "grid_sizes", 0) for g in grid_sizes]
        self.hide_prob = _number(hide_prob, "HideAndSeek", "hide_prob")

    def __call__(self, img: Any) -> np.ndarray:
        out, hwc = _hwc_copy(img, "HideAndSeek")
        grid = self.grid_sizes[self.rng.randrange(len(self.grid_sizes))]
        if grid == 0:
            return out
        h, w = hwc.shape[:2]
        for x in range(0, w, grid):  # PaddleClas's draw order: columns outer, rows inner
            for y in range(0, h, grid):
                if self.rng.random() <= self.hide_prob:
                    hwc[y:y + grid, x:x + grid] = 0
        return out

    def __repr__(self) -> str:
        return f"HideAndSeek(grid_sizes={self.grid_sizes}, hide_prob={self.hide_prob})"


# ------------------------------------------------------------------------------------------------ colour operators

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
    Image, _, _ = _pil()
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
        _, enhance, _ = _pil()
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
        pil = _to_pil(img)
        for (low, high), apply in self.rng.sample(self.components, len(self.components)):
            pil = apply(pil, self.rng.uniform(low, high))
        return _to_numpy(pil)


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
