"""The manifest of a prepared dataset: what `prepare_dataset` writes last and every reader reads first.

Layout of a prepared dataset (local path or fsspec URL):

    OUT/manifest.json                 written last: its presence means the dataset is complete
    OUT/<split>/part-00000.parquet    shards, schema image: binary, label: int32, path: string

manifest.json:
    {"format": "ppipe.imagefolder.parquet", "format_version": 1, "source": ..., "created": ...,
     "num_classes": N, "classes": [...],
     "splits": {"train": {"num_images": n, "shards": [{"path": "train/part-00000.parquet",
                                                       "num_rows": r, "sha256": "...", "size": bytes}]}},
     "rejected": [{"path": ..., "reason": ...}]}
"""

from __future__ import annotations

import json
from typing import Any

from ppipe import storage

MANIFEST_NAME = "manifest.json"
FORMAT = "ppipe.imagefolder.parquet"
FORMAT_VERSION = 1


class DatasetError(ValueError):
    """A dataset source or prepared dataset that cannot be used; the message says which and why."""


def manifest_url(prepared: str) -> str:
    return storage.join(str(prepared), MANIFEST_NAME)


def load_manifest(prepared: str) -> dict[str, Any]:
    """Read and validate `prepared`/manifest.json; a missing or malformed manifest raises DatasetError."""
    url = manifest_url(prepared)
    try:
        fs, path = storage.filesystem(url)
        present = fs.exists(path)
    except Exception as exc:  # unreachable store, bad URL
        raise DatasetError(f"cannot read prepared dataset {prepared!r}: {exc}") from exc
    if not present:
        raise DatasetError(
            f"{prepared!r} has no {MANIFEST_NAME}: not a prepared dataset or preparation did not finish "
            f"(run `ppipe data prepare SOURCE {prepared}`)")
    try:
        with fs.open(path, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{url!r} is not valid JSON: {exc}") from exc
    _validate(manifest, url)
    return manifest


def _validate(m: Any, url: str) -> None:
    def bad(why: str) -> DatasetError:
        return DatasetError(f"{url!r} is not a valid ppipe dataset manifest: {why}")

    if not isinstance(m, dict):
        raise bad("expected a JSON object")
    if m.get("format") != FORMAT:
        raise bad(f"format is {m.get('format')!r}, expected {FORMAT!r}")
    version = m.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise bad(f"format_version {version!r} is not supported (this ppipe reads up to {FORMAT_VERSION})")
    classes = m.get("classes")
    if not isinstance(classes, list) or m.get("num_classes") != len(classes):
        raise bad("'classes' must be a list of length 'num_classes'")
    splits = m.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise bad("'splits' must be a non-empty object")
    for name, s in splits.items():
        shards = s.get("shards") if isinstance(s, dict) else None
        if not isinstance(shards, list):
            raise bad(f"split {name!r} has no shard list")
        rows = 0
        for sh in shards:
            if not isinstance(sh, dict) or not {"path", "num_rows", "sha256"} <= set(sh):
                raise bad(f"split {name!r} has a shard entry without path/num_rows/sha256: {sh!r}")
            rows += sh["num_rows"]
        if rows != s.get("num_images"):
            raise bad(f"split {name!r}: shards hold {rows} rows but num_images is {s.get('num_images')!r}")


def split_info(manifest: dict[str, Any], split: str, prepared: str = "") -> dict[str, Any]:
    splits = manifest["splits"]
    if split not in splits:
        raise DatasetError(
            f"prepared dataset {prepared!r} has no split {split!r}; it has: {', '.join(sorted(splits))}")
    return splits[split]
