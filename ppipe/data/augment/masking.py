"""PaddleClas's erasing and masking operators: RandomErasing (Zhong et al., arXiv:1708.04896), Cutout, GridMask
and HideAndSeek (`ppcls/data/preprocess/ops/{random_erasing,cutout,grid,hide_and_seek}.py` in PaddleClas 2.6).

They go after NormalizeImage(order='') and before ToCHWImage, as in PaddleClas configs, and return a copy of the
array they are given. RandomErasing indexes shape[0] as height, shape[1] as width and shape[2] as channels.
Cutout, GridMask and HideAndSeek mask square regions with zeros (the mean pixel once normalised). PaddleClas's
GridMask and HideAndSeek code indexes that HWC array as CHW, which masks image columns and channels instead of the
square patches their papers describe; ppipe masks the patches, on HWC input (CHW and HW are accepted too).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ppipe.data.augment.pil_ops import pil_modules
from ppipe.data.operators import OperatorParamError, register_operator
from ppipe.data.transforms import Operator, _eval_number

__all__ = ["Cutout", "GridMask", "HideAndSeek", "RandomErasing"]


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
        Image, _, _ = pil_modules()
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
