"""PaddleClas's TimmAutoAugment: timm's RandAugment and AutoAugment policies (`ppcls/data/preprocess/ops/
timm_autoaugment.py` in PaddleClas 2.6, after timm's `auto_augment.py`). HWC uint8 RGB in and out; goes before
NormalizeImage."""

from __future__ import annotations

import random
import re
from typing import Any, Callable

import numpy as np

from ppipe.data.augment.autoaugment import IMAGENET_POLICY
from ppipe.data.augment.pil_ops import pil_modules, posterize, to_numpy, to_pil
from ppipe.data.operators import OperatorParamError, register_operator
from ppipe.data.transforms import Operator

__all__ = ["TimmAutoAugment"]

_MAX_LEVEL = 10.0
IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)


def _t_resample(kw: dict, rng: random.Random):
    r = kw["resample"]
    return rng.choice(r) if isinstance(r, (list, tuple)) else r


def _t_affine(img, coeffs, kw, rng):
    Image, _, _ = pil_modules()
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
    _, ImageEnhance, ImageOps = pil_modules()
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
        ops[base] = lambda img, a, kw, rng: posterize(img, a[0])
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
# timm's "original" policy is the AutoAugment paper's ImageNet policy, in timm's operation names.
_TIMM_NAMES = {"posterize": "PosterizeOriginal", "shearX": "ShearX", "autocontrast": "AutoContrast"}


def _timm_name(op: str) -> str:
    return _TIMM_NAMES.get(op, op.capitalize())


_AA_POLICY_ORIGINAL = [[(_timm_name(o1), p1, m1), (_timm_name(o2), p2, m2)] for p1, o1, m1, p2, o2, m2 in IMAGENET_POLICY]


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
        Image, _, _ = pil_modules()
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
        pil = to_pil(img)
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
        return to_numpy(pil)

    def __repr__(self) -> str:
        return f"TimmAutoAugment({self.config_str!r}, prob={self.prob})"
