"""Whether an image file can be used, and the RGB bytes to store for it: `ppipe data prepare` decodes every file
completely with Pillow, keeps RGB JPEG/PNG files without an EXIF rotation byte for byte, and converts the others to
RGB (EXIF orientation applied; JPEG sources re-encoded as JPEG quality 95, others as PNG)."""

from __future__ import annotations

import io
import posixpath

__all__ = ["IMAGE_EXTENSIONS", "check_image", "is_image_name"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".webp", ".tif", ".tiff",
                              ".gif", ".ppm", ".pgm", ".pnm"})


def is_image_name(name: str) -> bool:
    """An image file by its extension (case-insensitive); dot-files are not."""
    base = posixpath.basename(name)
    return not base.startswith(".") and posixpath.splitext(base)[1].lower() in IMAGE_EXTENSIONS


def check_image(data: bytes) -> tuple[bytes | None, str | None, bool]:
    """Decode `data` completely. Returns (bytes to store, None, reencoded) or (None, reason, False)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        return None, "empty file", False
    fmt = None
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            im.load()
            orientation = im.getexif().get(0x0112, 1)
            if im.mode == "RGB" and fmt in ("JPEG", "PNG") and orientation in (None, 1):
                return data, None, False
            img = ImageOps.exif_transpose(im) if orientation not in (None, 1) else im.copy()
    except UnidentifiedImageError:
        return None, "not a recognized image format (corrupt or not an image)", False
    except Image.DecompressionBombError as exc:
        return None, f"image too large: {exc}", False
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the file is rejected
        what = fmt or _sniff_format(data) or "image"
        msg = str(exc)
        if "truncated" in msg.lower():
            return None, f"truncated {what}", False
        return None, f"corrupt {what}: {type(exc).__name__}: {msg}".rstrip(": "), False
    try:
        img = _to_rgb(img)
        out = io.BytesIO()
        if fmt == "JPEG":
            img.save(out, format="JPEG", quality=95)
        else:
            img.save(out, format="PNG", compress_level=6)
        return out.getvalue(), None, True
    except Exception as exc:  # noqa: BLE001
        return None, f"cannot convert {fmt or 'image'} ({img.mode}) to RGB: {exc}", False


_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"BM", "BMP"), (b"GIF8", "GIF"),
          (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def _sniff_format(data: bytes) -> str | None:
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _to_rgb(img):
    import numpy as np
    from PIL import Image

    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img).astype(np.int64)
        shift = 8 if arr.max(initial=0) > 255 else 0
        img = Image.fromarray(np.clip(arr >> shift, 0, 255).astype(np.uint8), mode="L")
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), mode="L")
    elif img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    return img.convert("RGB")
