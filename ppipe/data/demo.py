"""`ppipe data demo`: scikit-learn's digits (1797 real 8x8 scans, 10 classes) as an ImageNet-layout folder.

    OUT/train/<digit>/<id>.png, OUT/val/<digit>/<id>.png, OUT/LOC_synset_mapping.txt

The split is stratified and fixed by `seed` (the same files every time); `<id>` is the sample's index in
`sklearn.datasets.load_digits`, so a file name identifies the sample across runs.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ppipe import storage

__all__ = ["write_digits_demo", "DIGIT_NAMES"]

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def digits_split(val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8 [N,8,8] in 0..255, labels, train indices, val indices): the fixed stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    digits = load_digits()
    images = np.clip(np.round(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    idx = np.arange(len(labels))
    train_idx, val_idx = train_test_split(idx, test_size=val_fraction, stratify=labels, random_state=seed)
    return images, labels, np.sort(train_idx), np.sort(val_idx)


def _png(img8: np.ndarray, size: int) -> bytes:
    from PIL import Image

    im = Image.fromarray(img8, mode="L").resize((size, size), Image.Resampling.BICUBIC).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def write_digits_demo(out: str, image_size: int = 32, val_fraction: float = 0.2, seed: int = 0) -> dict[str, Any]:
    """Write the digits demo dataset under `out` (local path or fsspec URL) and return its summary."""
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    out = str(out)
    images, labels, train_idx, val_idx = digits_split(val_fraction, seed)
    jobs = [(split, int(i)) for split, ids in (("train", train_idx), ("val", val_idx)) for i in ids]

    def write(job: tuple[str, int]) -> None:
        split, i = job
        storage.write_bytes_atomic(storage.join(out, split, str(labels[i]), f"{i:04d}.png"), _png(images[i], image_size))

    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in pool.map(write, jobs):
            pass
    mapping = "".join(f"{d} {name}\n" for d, name in enumerate(DIGIT_NAMES))
    storage.write_bytes_atomic(storage.join(out, "LOC_synset_mapping.txt"), mapping.encode())
    return {"out": out, "num_classes": len(DIGIT_NAMES), "image_size": image_size,
            "splits": {"train": {"num_images": len(train_idx)}, "val": {"num_images": len(val_idx)}}}
