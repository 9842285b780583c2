"""PaddleClas-compatible image transform operators.

`create_operators(op_list)` takes the same `transform_ops` list a PaddleClas config holds: a list of single-key
dicts `{OpName: params_or_None}`, and returns a callable that applies the operators in order. The operators
follow PaddleClas 2.6 (`ppcls/data/preprocess/ops/operators.py`): same names, same parameter names and defaults,
same semantics (OpenCV backend by default, HWC uint8 RGB arrays between operators).

Operators are classes in a registry (`ppipe.data.operators.OPERATORS`, filled by `@register_operator`);
`ppipe.data.augment` registers the augmentation policies, `ppipe.data.batch_ops` the batch operators (in their
own registry: a `transform_ops` list refuses them, naming the list they belong to).

Randomness: every operator draws from `self.rng` (a `random.Random`). Operators built by `create_operators`
share one generator, which `Compose.reseed(seed)` resets, so a pipeline is reproducible per sample or batch.
"""

from __future__ import annotations

import io
import math
import random
from typing import Any

import numpy as np

from ppipe.data.operators import (OPERATORS, OperatorParamError, UnknownOperatorError, build_operators,
                                  register_operator)

__all__ = [
    "OPERATORS",
    "OperatorParamError",
    "UnknownOperatorError",
    "Compose",
    "register_operator",
    "create_operators",
    "DecodeImage",
    "ResizeImage",
    "RandCropImage",
    "RandFlipImage",
    "CropImage",
    "NormalizeImage",
    "ToCHWImage",
]


def _has_rgb_decode() -> bool:
    try:
        return hasattr(_cv2(), "IMREAD_COLOR_RGB")
    except ImportError:  # pragma: no cover
        return False


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("ppipe's image operators need OpenCV: pip install opencv-python-headless") from exc
    return cv2


_HAS_RGB_DECODE = _has_rgb_decode()


def _simplejpeg():
    try:
        import simplejpeg
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return simplejpeg


def _is_plain_jpeg(data) -> bool:
    """A JPEG simplejpeg decodes exactly like OpenCV: YCbCr or grayscale (CMYK/YCCK go through OpenCV)."""
    if bytes(data[:2]) != b"\xff\xd8" or _simplejpeg() is None:
        return False
    try:
        colorspace = _simplejpeg().decode_jpeg_header(bytes(data))[2]
    except ValueError:
        return False
    return colorspace in ("YCbCr", "Gray")


class Operator:
    """Base class: a callable on one sample, with its own random generator."""

    def __init__(self) -> None:
        self.rng: random.Random = random.Random()

    def __call__(self, img: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class UnifiedResize:
    """Resize with OpenCV (default) or Pillow, `size` given as (w, h), like PaddleClas's UnifiedResize."""

    _CV2_INTERP = {"nearest": "INTER_NEAREST", "bilinear": "INTER_LINEAR", "area": "INTER_AREA",
                   "bicubic": "INTER_CUBIC", "lanczos": "INTER_LANCZOS4"}
    _PIL_INTERP = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "box": "BOX",
                   "lanczos": "LANCZOS", "hamming": "HAMMING"}

    def __init__(self, interpolation: str | int | None = None, backend: str = "cv2") -> None:
        backend = (backend or "cv2").lower()
        if backend not in ("cv2", "pil"):
            raise OperatorParamError(f"resize backend must be 'cv2' or 'pil', got {backend!r}")
        self.backend = backend
        if isinstance(interpolation, str):
            table = self._CV2_INTERP if backend == "cv2" else self._PIL_INTERP
            key = interpolation.lower()
            if key not in table:
                raise OperatorParamError(
                    f"unknown interpolation {interpolation!r} for backend {backend!r}; valid: {', '.join(table)}")
            if backend == "cv2":
                interpolation = getattr(_cv2(), table[key])
            else:
                from PIL import Image

                interpolation = getattr(Image.Resampling, table[key])
        elif interpolation is None and backend == "cv2":
            interpolation = _cv2().INTER_LINEAR
        self.interpolation = interpolation

    def __call__(self, img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        w, h = int(size[0]), int(size[1])
        if self.backend == "cv2":
            return _cv2().resize(np.ascontiguousarray(img), (w, h), interpolation=self.interpolation)
        from PIL import Image

        pil = img if isinstance(img, Image.Image) else Image.fromarray(np.ascontiguousarray(img))
        if self.interpolation is None:
            return np.asarray(pil.resize((w, h)))
        return np.asarray(pil.resize((w, h), self.interpolation))


@register_operator
class DecodeImage(Operator):
    """Encoded image bytes -> HWC uint8 array (RGB when `to_rgb`, else OpenCV's BGR); CHW when `channel_first`."""

    def __init__(self, to_rgb: bool = True, to_np: bool = True, channel_first: bool = False,
                 backend: str = "cv2") -> None:
        super().__init__()
        self.to_rgb = to_rgb
        self.to_np = to_np
        self.channel_first = channel_first
        self.backend = (backend or "cv2").lower()
        if self.backend not in ("cv2", "pil"):
            raise OperatorParamError(f"DecodeImage: backend must be 'cv2' or 'pil', got {backend!r}")

    def __call__(self, img: Any) -> Any:
        if isinstance(img, (bytes, bytearray, memoryview)):
            if len(img) == 0:
                raise ValueError("DecodeImage: empty input")
            if self.backend == "pil":
                from PIL import Image

                pil = Image.open(io.BytesIO(bytes(img)))
                pil = pil.convert("RGB")
                if not self.to_np:
                    return pil
                arr = np.asarray(pil)  # already RGB
                if not self.to_rgb:
                    arr = arr[:, :, ::-1]
            elif _is_plain_jpeg(img):
                # libjpeg-turbo through simplejpeg: the same pixels as OpenCV's decoder (checked in the tests),
                # in about two thirds of the CPU time, and straight to RGB or BGR.
                arr = _simplejpeg().decode_jpeg(bytes(img), colorspace="RGB" if self.to_rgb else "BGR")
            else:
                cv2 = _cv2()
                # Decoding straight to RGB (OpenCV >= 4.10) gives the same pixels as BGR + channel flip
                # without the strided copy the flip costs later.
                flag = cv2.IMREAD_COLOR_RGB if self.to_rgb and _HAS_RGB_DECODE else cv2.IMREAD_COLOR
                arr = cv2.imdecode(np.frombuffer(img, dtype=np.uint8), flag)  # HWC
                if arr is None:
                    raise ValueError("DecodeImage: the bytes are not a decodable image")
                if self.to_rgb and not _HAS_RGB_DECODE:
                    arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
        elif isinstance(img, np.ndarray):
            arr = img
        else:
            raise ValueError(f"DecodeImage: expected encoded bytes, got {type(img).__name__}")
        if self.channel_first:
            arr = arr.transpose((2, 0, 1))
        return np.ascontiguousarray(arr)


@register_operator
class ResizeImage(Operator):
    """Resize to `size` (int or [w, h]) or so that the short side is `resize_short` (aspect kept, rounded)."""

    def __init__(self, size: int | list[int] | None = None, resize_short: int | None = None,
                 interpolation: str | None = None, backend: str = "cv2", return_numpy: bool = True) -> None:
        super().__init__()
        if resize_short is not None and resize_short > 0:
            self.resize_short = resize_short
            self.w = self.h = None
        elif size is not None:
            self.resize_short = None
            self.w = size if isinstance(size, int) else size[0]
            self.h = size if isinstance(size, int) else size[1]
        else:
            raise OperatorParamError("ResizeImage: one of 'size' and 'resize_short' must be set")
        self.return_numpy = return_numpy
        self._resize = UnifiedResize(interpolation=interpolation, backend=backend)

    def __call__(self, img: np.ndarray) -> Any:
        img_h, img_w = img.shape[:2]
        if self.resize_short is not None:
            percent = float(self.resize_short) / min(img_w, img_h)
            w = int(round(img_w * percent))
            h = int(round(img_h * percent))
        else:
            w, h = self.w, self.h
        out = self._resize(img, (w, h))
        if not self.return_numpy:
            from PIL import Image

            return Image.fromarray(out)
        return out


@register_operator
class CropImage(Operator):
    """Center crop to `size` (int, or (w, h) as PaddleClas unpacks it)."""

    def __init__(self, size: int | list[int]) -> None:
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        w, h = self.size
        img_h, img_w = img.shape[:2]
        w_start = (img_w - w) // 2
        h_start = (img_h - h) // 2
        return img[h_start:h_start + h, w_start:w_start + w, :]


@register_operator
class RandCropImage(Operator):
    """Random-resized crop (Inception style): area fraction in `scale`, aspect ratio in `ratio`, then resize."""

    def __init__(self, size: int | list[int], scale: list[float] | None = None, ratio: list[float] | None = None,
                 interpolation: str | None = None, use_log_aspect: bool = False, backend: str = "cv2") -> None:
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale = [0.08, 1.0] if scale is None else list(scale)
        self.ratio = [3.0 / 4.0, 4.0 / 3.0] if ratio is None else list(ratio)
        self.use_log_aspect = use_log_aspect
        self._resize = UnifiedResize(interpolation=interpolation, backend=backend)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        scale, ratio = self.scale, self.ratio
        if self.use_log_aspect:
            aspect_ratio = math.exp(self.rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        else:
            aspect_ratio = self.rng.uniform(*ratio)
        w = 1.0 * math.sqrt(aspect_ratio)
        h = 1.0 / math.sqrt(aspect_ratio)
        img_h, img_w = img.shape[:2]
        bound = min((float(img_w) / img_h) / (w ** 2), (float(img_h) / img_w) / (h ** 2))
        scale_max = min(scale[1], bound)
        scale_min = min(scale[0], bound)
        target_size = math.sqrt(img_w * img_h * self.rng.uniform(scale_min, scale_max))
        w = min(max(1, int(target_size * w)), img_w)
        h = min(max(1, int(target_size * h)), img_h)
        i = self.rng.randint(0, img_w - w)
        j = self.rng.randint(0, img_h - h)
        return self._resize(img[j:j + h, i:i + w, :], self.size)


@register_operator
class RandFlipImage(Operator):
    """Flip with probability 1/2: flip_code 1 horizontal, 0 vertical, -1 both (cv2.flip codes)."""

    def __init__(self, flip_code: int = 1) -> None:
        super().__init__()
        if flip_code not in (-1, 0, 1):
            raise OperatorParamError(f"RandFlipImage: flip_code must be -1, 0 or 1, got {flip_code!r}")
        self.flip_code = flip_code

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.rng.randint(0, 1) == 1:
            if img.ndim == 3 and img.shape[2] <= 4 and img.dtype in (np.uint8, np.float32):
                return _cv2().flip(np.ascontiguousarray(img), self.flip_code)  # SIMD, one pass
            if self.flip_code == 1:
                return np.ascontiguousarray(img[:, ::-1])
            if self.flip_code == 0:
                return np.ascontiguousarray(img[::-1])
            return np.ascontiguousarray(img[::-1, ::-1])
        return img


@register_operator
class NormalizeImage(Operator):
    """(img * scale - mean) / std in float32 (float16 with output_fp16); `order` 'chw' or '' (HWC) says how
    mean/std broadcast; channel_num 4 appends a zero channel."""

    def __init__(self, scale: float | str | None = None, mean: list[float] | None = None,
                 std: list[float] | None = None, order: str = "chw", output_fp16: bool = False,
                 channel_num: int = 3) -> None:
        super().__init__()
        if isinstance(scale, str):
            scale = _eval_number(scale)
        if channel_num not in (3, 4):
            raise OperatorParamError("NormalizeImage: channel_num must be 3 or 4")
        self.channel_num = channel_num
        self.output_dtype = np.float16 if output_fp16 else np.float32
        self.scale = np.float32(scale if scale is not None else 1.0 / 255.0)
        self.order = order
        mean = mean if mean is not None else [0.485, 0.456, 0.406]
        std = std if std is not None else [0.229, 0.224, 0.225]
        shape = (3, 1, 1) if order == "chw" else (1, 1, 3)
        self.mean = np.array(mean, dtype=np.float32).reshape(shape)
        self.std = np.array(std, dtype=np.float32).reshape(shape)

    def __call__(self, img: Any) -> np.ndarray:
        img = np.asarray(img)
        out = img.astype(np.float32)
        out *= self.scale  # in place: one temporary instead of three
        out -= self.mean
        out /= self.std
        if self.channel_num == 4:
            if self.order == "chw":
                out = np.concatenate([out, np.zeros((1,) + out.shape[1:], np.float32)], axis=0)
            else:
                out = np.concatenate([out, np.zeros(out.shape[:2] + (1,), np.float32)], axis=2)
        return out.astype(self.output_dtype)


@register_operator
class ToCHWImage(Operator):
    """HWC -> CHW."""

    def __call__(self, img: Any) -> np.ndarray:
        return np.asarray(img).transpose((2, 0, 1))


def _eval_number(text: str) -> float:
    """PaddleClas writes scales like '1.0/255.0' in YAML; evaluate such arithmetic without eval()."""
    import ast
    import operator as op

    ops = {ast.Add: op.add, ast.Sub: op.sub, ast.Mult: op.mul, ast.Div: op.truediv, ast.USub: op.neg}

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in ops:
            return ops[type(node.op)](ev(node.operand))
        raise OperatorParamError(f"NormalizeImage: scale {text!r} is not a number or arithmetic expression")

    return ev(ast.parse(text, mode="eval").body)


class Compose:
    """Operators applied in order; all share one random generator (see `reseed`)."""

    def __init__(self, ops: list[Operator], seed: int | None = None) -> None:
        self.ops = list(ops)
        self.rng = random.Random(seed)
        for o in self.ops:
            o.rng = self.rng

    @classmethod
    def sharing_rng(cls, parent: "Compose", ops: list[Operator]) -> "Compose":
        """A Compose over some of `parent`'s operators that draws from `parent`'s generator, so reseeding
        the parent reseeds it."""
        new = cls.__new__(cls)
        new.ops, new.rng = list(ops), parent.rng
        return new

    def reseed(self, seed: int) -> None:
        self.rng.seed(seed)

    def __call__(self, data: Any) -> Any:
        for o in self.ops:
            data = o(data)
        return data

    def __len__(self) -> int:
        return len(self.ops)

    def __repr__(self) -> str:
        return f"Compose({self.ops!r})"


def create_operators(op_list: list[dict[str, Any]] | None, seed: int | None = None) -> Compose:
    """A callable applying a PaddleClas `transform_ops` list in order.

    `op_list` items are single-key dicts `{OpName: params_or_None}` (or a bare `OpName`). `seed` seeds the shared
    random generator (None: fresh entropy); `Compose.reseed` resets it later. An unknown operator raises
    UnknownOperatorError, an unknown or bad parameter OperatorParamError; both name it and the closest known.
    """
    return Compose(build_operators(OPERATORS, op_list, "transform_ops"), seed=seed)

