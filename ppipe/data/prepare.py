"""`ppipe data prepare`: an image-classification source -> checked Parquet shards + manifest.json.

Accepted sources (a local path or any fsspec URL):
  * ImageNet folder layout: `train/<class>/*`, `val/<class>/*` (class folders; files may be nested deeper).
  * `val/` flat (images directly inside) with labels from `LOC_val_solution.csv` (Kaggle; in the source root or
    in `val/`) or a `val_list.txt` (`path label` lines, path relative to the source root or to `val/`).
  * PaddleClas list files: `train_list.txt` / `val_list.txt` in the source root, `relative/path label` lines
    (used for a split that has no class folders).
  Class names come from `LOC_synset_mapping.txt` (first column, file order) when present, else the sorted
  class-folder names (or `0..max_label` for list files).

Every image file (by extension, case-insensitive; dot-files are ignored) is decoded completely with Pillow.
Files that are already RGB JPEG/PNG without an EXIF rotation are stored byte for byte; the others are
converted to RGB (EXIF orientation applied) and re-encoded (JPEG sources as JPEG quality 95, others as PNG).
Files that do not decode completely are listed in `rejected` with a reason; the run still succeeds.

Output: `OUT/<split>/part-NNNNN.parquet` (image: binary, label: int32, path: string), each written atomically,
then `OUT/manifest.json` last (see `ppipe.data.manifest`). A previous manifest in OUT is removed first, so an
interrupted run never leaves a dataset that looks complete; a re-run resumes after the shards already written,
and a re-run on an unchanged source does nothing (see `prepare_dataset`).
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import os
import posixpath
import random
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ppipe import storage
from ppipe.data._pool import ordered_map
from ppipe.data.manifest import FORMAT, FORMAT_VERSION, DatasetError, load_manifest, manifest_url

__all__ = ["prepare_dataset", "load_manifest", "DatasetError", "IMAGE_EXTENSIONS", "check_image"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".webp", ".tif", ".tiff",
                              ".gif", ".ppm", ".pgm", ".pnm"})
SPLITS = ("train", "val")
MAPPING_FILE = "LOC_synset_mapping.txt"
KAGGLE_VAL_FILE = "LOC_val_solution.csv"
ORDER_SEED = 0  # fixed shuffle of the training rows across shards, so each shard mixes classes
MAX_SHARD_BYTES = 1 << 30  # Parquet `binary` columns hold < 2 GiB per chunk
_CHUNK = 32  # files per worker task

_EXPECTED = ("expected an ImageNet-layout folder (train/<class>/<image>, val/<class>/<image> or val/ flat with "
             "LOC_val_solution.csv or val_list.txt) or PaddleClas list files (train_list.txt, val_list.txt with "
             "'relative/path label' lines)")


# --------------------------------------------------------------------------------------------- checking


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


@lru_cache(maxsize=8)
def _source_fs(source: str):
    return storage.filesystem(source)


def _check_chunk(source: str, rels: list[str]) -> list[tuple[bytes | None, str | None, bool]]:
    fs, root = _source_fs(source)
    results = []
    for rel in rels:
        try:
            with fs.open(_abs(root, rel), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            results.append((None, "file not found", False))
            continue
        except Exception as exc:  # noqa: BLE001
            results.append((None, f"cannot read file: {type(exc).__name__}: {exc}", False))
            continue
        results.append(check_image(data))
    return results


# --------------------------------------------------------------------------------------------- discovery


def _abs(root: str, rel: str) -> str:
    return posixpath.join(root, rel)


def _is_image_name(name: str) -> bool:
    base = posixpath.basename(name)
    return not base.startswith(".") and posixpath.splitext(base)[1].lower() in IMAGE_EXTENSIONS


@dataclass
class _Plan:
    classes: list[str]
    descriptions: dict[str, str] = field(default_factory=dict)
    splits: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # split -> [(rel path, label)]
    missing: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # listed but not found
    layout: dict[str, str] = field(default_factory=dict)


class _Source:
    def __init__(self, source: str) -> None:
        self.url = str(source)
        try:
            self.fs, self.root = storage.filesystem(self.url)
        except Exception as exc:  # noqa: BLE001
            raise DatasetError(f"dataset source {self.url!r} cannot be opened: {exc}; {_EXPECTED}") from exc

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts) if parts else self.root

    def isdir(self, *parts: str) -> bool:
        return self.fs.isdir(self.path(*parts))

    def isfile(self, *parts: str) -> bool:
        return self.fs.isfile(self.path(*parts))

    def read_text(self, *parts: str) -> str:
        with self.fs.open(self.path(*parts), "rb") as f:
            return f.read().decode("utf-8-sig")

    def entries(self, *parts: str) -> list[tuple[str, bool]]:
        """(name, is_dir) of a folder's children, sorted; errors propagate."""
        out = []
        for e in self.fs.ls(self.path(*parts), detail=True):
            name = posixpath.basename(str(e["name"]).rstrip("/"))
            out.append((name, e.get("type") == "directory"))
        return sorted(out)

    def files_under(self, *parts: str) -> list[str]:
        """Image files below a folder (recursive), as paths relative to the source root."""
        base = self.path(*parts)
        rels = []
        for dirpath, _dirs, files in self.fs.walk(base, on_error="raise"):
            for name in files:
                if _is_image_name(name):
                    full = posixpath.join(str(dirpath), name)
                    rels.append(self.rel(full))
        return sorted(rels)

    def rel(self, full: str) -> str:
        root = self.root.rstrip("/")
        full = str(full)
        if full.startswith(root + "/"):
            return full[len(root) + 1:]
        return full


def _read_mapping(src: _Source) -> tuple[list[str], dict[str, str]] | None:
    if not src.isfile(MAPPING_FILE):
        return None
    classes, desc = [], {}
    for line in src.read_text(MAPPING_FILE).splitlines():
        parts = line.strip().split(maxsplit=1)
        if not parts:
            continue
        classes.append(parts[0])
        desc[parts[0]] = parts[1] if len(parts) > 1 else parts[0]
    if len(set(classes)) != len(classes):
        raise DatasetError(f"{src.url}/{MAPPING_FILE} lists a class more than once")
    if not classes:
        raise DatasetError(f"{src.url}/{MAPPING_FILE} is empty; expected '<folder> <name>' lines")
    return classes, desc


UNLABELED = -1  # the label of an image listed without one (distillation data: the teacher supplies targets)


def _read_list_file(src: _Source, name: str, split: str) -> list[tuple[str, int]]:
    """PaddleClas list file lines `relative/path label` -> [(path relative to the source root, label)].

    A line holding only a path lists an unlabeled image (label `UNLABELED`), as SSLD's extra data is.
    """
    items = []
    prefix: str | None = None  # paths are relative to the source root or to the split folder: decided once
    for n, line in enumerate(src.read_text(name).splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) == 1:
            rel, lab = parts[0], UNLABELED
        else:
            rel, label = parts
            try:
                lab = int(label)
            except ValueError:
                if src.isfile(line) or src.isfile(split, line):  # a path with a space, no label
                    rel, lab = line, UNLABELED
                else:
                    raise DatasetError(f"{src.url}/{name} line {n}: expected 'relative/path label' with an "
                                       f"integer label (or just a path, for an unlabeled image), got {line!r}") \
                        from None
            if lab < 0 and lab != UNLABELED:
                raise DatasetError(f"{src.url}/{name} line {n}: label {lab} is negative")
        rel = rel[2:] if rel.startswith("./") else rel
        if prefix is None:
            prefix = split if (not src.isfile(rel) and src.isfile(split, rel)) else ""
        items.append((posixpath.join(prefix, rel) if prefix else rel, lab))
    return items


def _discover(src: _Source) -> _Plan:
    if not src.fs.exists(src.root):
        raise DatasetError(f"dataset source {src.url!r} does not exist; {_EXPECTED}")
    if not src.isdir():
        raise DatasetError(f"dataset source {src.url!r} is not a folder; {_EXPECTED}")
    mapping = _read_mapping(src)

    # What each split looks like: class folders, flat images, a list file, or absent.
    kinds: dict[str, tuple[str, Any]] = {}
    notes = []
    for split in SPLITS:
        list_name = f"{split}_list.txt"
        if src.isdir(split):
            entries = src.entries(split)
            class_dirs = [n for n, d in entries if d and not n.startswith(".")]
            flat = [n for n, d in entries if not d and _is_image_name(n)]
            if class_dirs:
                kinds[split] = ("folders", class_dirs)
                if flat:
                    log.warning("%s/%s: %d image files next to class folders are ignored", src.url, split, len(flat))
                continue
            if flat:
                kinds[split] = ("flat", None)
                continue
            notes.append(f"{split}/ has no class folders and no images")
        if src.isfile(list_name):
            kinds[split] = ("list", list_name)
    if not kinds:
        why = "; ".join(notes) if notes else "it has no train/ or val/ folder and no train_list.txt/val_list.txt"
        raise DatasetError(f"dataset source {src.url!r} has no classes or images ({why}); {_EXPECTED}")

    folder_names = sorted({c for k, v in kinds.values() if k == "folders" for c in v})
    if mapping is not None:
        classes, descriptions = mapping
        unknown = [c for c in folder_names if c not in set(classes)]
        if unknown:
            raise DatasetError(f"dataset source {src.url!r}: class folders {unknown[:5]} are not in {MAPPING_FILE}")
    else:
        classes, descriptions = folder_names, {}
    index = {c: i for i, c in enumerate(classes)}

    plan = _Plan(classes=classes, descriptions=descriptions)
    list_labels: list[int] = []
    for split, (kind, arg) in kinds.items():
        if kind == "folders":
            items = []
            for cls in arg:
                items += [(rel, index[cls]) for rel in src.files_under(split, cls)]
        elif kind == "flat":
            items = _flat_split(src, split, classes, index)
        else:
            items = _read_list_file(src, arg, split)
            list_labels += [lab for _, lab in items]
        plan.layout[split] = kind
        plan.splits[split] = items

    if not classes:
        if any(lab >= 0 for lab in list_labels):
            classes = [str(i) for i in range(max(list_labels) + 1)]
            plan.classes = classes
        else:
            raise DatasetError(f"dataset source {src.url!r} has no classes (no class folders under train/ or val/, "
                               f"no {MAPPING_FILE}); {_EXPECTED}")
    for split, items in plan.splits.items():
        bad = [(rel, lab) for rel, lab in items if not (0 <= lab < len(classes) or lab == UNLABELED)]
        if bad:
            raise DatasetError(f"dataset source {src.url!r}, split {split}: label {bad[0][1]} of {bad[0][0]!r} is "
                               f"outside 0..{len(classes) - 1} ({len(classes)} classes)")
    if not any(plan.splits.values()):
        raise DatasetError(f"dataset source {src.url!r} contains no image files "
                           f"({', '.join(sorted(IMAGE_EXTENSIONS))}); {_EXPECTED}")
    return plan


def _flat_split(src: _Source, split: str, classes: list[str], index: dict[str, int]) -> list[tuple[str, int]]:
    files = [r for r in src.files_under(split) if posixpath.dirname(r) == split]
    by_stem = {posixpath.splitext(posixpath.basename(r))[0]: r for r in files}
    for folder in ("", split):
        where = posixpath.join(folder, KAGGLE_VAL_FILE) if folder else KAGGLE_VAL_FILE
        if src.isfile(where):
            if not classes:
                raise DatasetError(f"{src.url}/{where} names classes by id but there are no class folders and no "
                                   f"{MAPPING_FILE}")
            labels = {}
            rows = csv.reader(io.StringIO(src.read_text(where)))
            for n, row in enumerate(rows, 1):
                if n == 1 and row and row[0].strip() == "ImageId":
                    continue
                if len(row) < 2 or not row[1].split():
                    raise DatasetError(f"{src.url}/{where} line {n}: expected 'ImageId,wnid ...', got {row!r}")
                wnid = row[1].split()[0]
                if wnid not in index:
                    raise DatasetError(f"{src.url}/{where} line {n}: class {wnid!r} is unknown")
                labels[row[0].strip()] = index[wnid]
            unlabeled = [r for s, r in by_stem.items() if s not in labels]
            if unlabeled:
                raise DatasetError(f"{src.url}/{split}: {len(unlabeled)} images have no label in {where}, "
                                   f"e.g. {unlabeled[0]!r}")
            return [(r, labels[s]) for s, r in sorted(by_stem.items(), key=lambda kv: kv[1])]
    for where in (f"{split}_list.txt", posixpath.join(split, f"{split}_list.txt")):
        if src.isfile(where):
            return _read_list_file(src, where, split)
    raise DatasetError(f"dataset source {src.url!r}: {split}/ holds images directly but there is no "
                       f"{KAGGLE_VAL_FILE} or {split}_list.txt to label them; put them in {split}/<class>/ folders "
                       f"or add one of these files")


# --------------------------------------------------------------------------------------------- writing


class _ShardWriter:
    """Accumulates checked images into shards of `shard_size` rows; `on_flush(shard, consumed)` is told each
    written shard and how many of the split's source items (accepted or rejected) precede its end."""

    def __init__(self, out: str, split: str, shard_size: int, on_flush=None,
                 shards: list[dict[str, Any]] | None = None) -> None:
        self.out, self.split, self.shard_size = out, split, shard_size
        self.on_flush = on_flush
        self.images: list[bytes] = []
        self.labels: list[int] = []
        self.paths: list[str] = []
        self.nbytes = 0
        self.shards: list[dict[str, Any]] = list(shards or [])

    def add(self, image: bytes, label: int, path: str, index: int) -> None:
        """Add the split's source item number `index` (0-based)."""
        if self.images and self.nbytes + len(image) > MAX_SHARD_BYTES:
            self.flush(consumed=index)
        self.images.append(image)
        self.labels.append(label)
        self.paths.append(path)
        self.nbytes += len(image)
        if len(self.images) >= self.shard_size:
            self.flush(consumed=index + 1)

    def flush(self, consumed: int) -> None:
        if not self.images:
            return
        rel = f"{self.split}/part-{len(self.shards):05d}.parquet"
        data = _parquet_bytes(self.images, self.labels, self.paths)
        _write_shard(storage.join(self.out, rel), data)
        shard = {"path": rel, "num_rows": len(self.images), "sha256": storage.sha256_bytes(data), "size": len(data)}
        self.shards.append(shard)
        self.images, self.labels, self.paths, self.nbytes = [], [], [], 0
        if self.on_flush is not None:
            self.on_flush(shard, consumed)


SCHEMA_FIELDS = (("image", "binary"), ("label", "int32"), ("path", "string"))


def _parquet_bytes(images: list[bytes], labels: list[int], paths: list[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("image", pa.binary()), ("label", pa.int32()), ("path", pa.string())])
    table = pa.Table.from_arrays([pa.array(images, pa.binary()), pa.array(labels, pa.int32()),
                                  pa.array(paths, pa.string())], schema=schema)
    sink = pa.BufferOutputStream()
    # Images are already compressed; a row group of at most 256 rows lets readers fetch parts of a shard.
    pq.write_table(table, sink, compression={"image": "none", "label": "snappy", "path": "snappy"},
                   row_group_size=256)
    return sink.getvalue().to_pybytes()


def _write_shard(url: str, data: bytes) -> None:
    """Indirection for tests (simulated failure mid-way)."""
    storage.write_bytes_atomic(url, data)


def _remove_if_exists(url: str) -> None:
    fs, path = storage.filesystem(url)
    if fs.exists(path):
        fs.rm(path)


# --------------------------------------------------------------------------------------------- entry point


def prepare_dataset(source: str, out: str, *, shard_size: int = 1024, num_workers: int | None = None,
                    progress: bool = True, executor: str = "processes") -> dict[str, Any]:
    """Check every image of `source`, write Parquet shards and `manifest.json` (last) under `out`.

    Returns the CONTRACT summary {"num_classes", "classes", "splits": {name: {"num_images"}}, "rejected"}.
    Raises DatasetError (a ValueError) when the source is unusable.

    `executor`: "processes" decodes in `num_workers` local processes (default os.cpu_count(); 0 or 1 decode
    in this process); "ray" sends the decode checks to Ray tasks (the running Ray instance, or `RAY_ADDRESS`;
    the source must then be readable from every node: S3 or a shared filesystem).

    Idempotent and resumable: the manifest records a fingerprint of the source (every file's path, label,
    size and modification stamp) and of the settings; a re-run that finds a complete dataset with the same
    fingerprint does nothing. While a run is under way, each written shard is journaled under
    `OUT/.progress/<fingerprint>/`; a re-run after an interruption keeps those shards and continues after them.
    """
    from tqdm import tqdm

    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if executor not in ("processes", "ray"):
        raise ValueError(f"executor must be 'processes' or 'ray', got {executor!r}")
    source, out = str(source), str(out)
    workers = (os.cpu_count() or 1) if num_workers is None else int(num_workers)
    _source_fs.cache_clear()  # credentials or endpoints may have changed since a previous call
    src = _Source(source)
    plan = _discover(src)
    fingerprint = _fingerprint(src, plan, shard_size)

    done = _unchanged_dataset(out, fingerprint)
    if done is not None:
        log.info("%s is already prepared from this source (fingerprint %s): nothing to do", out, fingerprint[:12])
        return summary_of(done)

    # A dataset being (re)written must not look complete: the old manifest goes first.
    _remove_if_exists(manifest_url(out))
    journal = _Journal(out, fingerprint)
    mapper = _ray_ordered_map if executor == "ray" else (
        lambda fn, tasks: ordered_map(fn, tasks, workers if workers > 1 else 0))

    order_rng = random.Random(ORDER_SEED)
    total = sum(len(v) for v in plan.splits.values())
    rejected: list[dict[str, str]] = []
    split_meta: dict[str, dict[str, Any]] = {}
    with tqdm(total=total, desc="prepare", unit="img", file=sys.stderr, disable=not progress,
              dynamic_ncols=True) as bar:
        for split in sorted(plan.splits, key=lambda s: (SPLITS.index(s) if s in SPLITS else 99, s)):
            items = sorted(plan.splits[split])
            if split == "train":
                order_rng.shuffle(items)
            kept_shards, consumed, kept_rejected, reencoded = journal.resume(split)
            rejected.extend(kept_rejected)
            pending_rejected: list[dict[str, str]] = []

            def on_flush(shard, upto, split=split, pending=pending_rejected):
                journal.record(split, shard, upto, list(pending), converted_so_far[0])
                pending.clear()

            converted_so_far = [reencoded]
            unlabeled_so_far = [0]
            # unlabeled images already written by an interrupted run are in the kept shards
            journal_unlabeled = sum(1 for rel, lab in items[:consumed] if lab == UNLABELED) - sum(
                1 for r in kept_rejected if r["path"] in {rel for rel, lab in items[:consumed] if lab == UNLABELED})
            writer = _ShardWriter(out, split, shard_size, on_flush=on_flush, shards=kept_shards)
            bar.update(consumed)
            todo = items[consumed:]
            chunks = [todo[i:i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
            tasks = ((source, [rel for rel, _ in chunk]) for chunk in chunks)
            index = consumed
            for chunk, results in zip(chunks, mapper(_check_chunk, tasks)):
                for (rel, label), (data, reason, converted) in zip(chunk, results):
                    if data is None:
                        entry = {"path": rel, "reason": reason}
                        rejected.append(entry)
                        pending_rejected.append(entry)
                    else:
                        converted_so_far[0] += converted
                        unlabeled_so_far[0] += label == UNLABELED
                        writer.add(data, label, rel, index)
                    index += 1
                bar.update(len(chunk))
            writer.flush(consumed=index)
            split_meta[split] = {"num_images": sum(s["num_rows"] for s in writer.shards),
                                 "num_unlabeled": unlabeled_so_far[0] + journal_unlabeled,
                                 "reencoded": converted_so_far[0], "layout": plan.layout[split],
                                 "shards": writer.shards}

    rejected.sort(key=lambda r: r["path"])
    if sum(m["num_images"] for m in split_meta.values()) == 0:
        raise DatasetError(f"dataset source {source!r}: none of its {total} image files could be decoded "
                           f"(e.g. {rejected[0]['path']}: {rejected[0]['reason']})")
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": source,
        "fingerprint": fingerprint,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "schema": dict(SCHEMA_FIELDS),
        "num_classes": len(plan.classes),
        "classes": plan.classes,
        "class_names": [plan.descriptions.get(c, c) for c in plan.classes],
        "splits": split_meta,
        "rejected": rejected,
    }
    storage.write_bytes_atomic(manifest_url(out),
                               json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8"))
    journal.clear()
    _remove_stale_shards(out, manifest)
    if rejected:
        log.warning("%d files rejected (see manifest.json 'rejected')", len(rejected))
    n = {k: v["num_images"] for k, v in split_meta.items()}
    log.info("prepared %s: %s images in %d classes, %d rejected", out, n, len(plan.classes), len(rejected))
    return summary_of(manifest)


def _fingerprint(src: "_Source", plan: "_Plan", shard_size: int) -> str:
    """What the output depends on: settings, and every planned file's path, label, size and stamp."""
    import hashlib

    stats = {}
    for full, info in src.fs.find(src.root, detail=True).items():
        stamp = info.get("ETag") or info.get("mtime") or info.get("LastModified") or info.get("created")
        stats[src.rel(full)] = (info.get("size"), str(stamp))
    h = hashlib.sha256(json.dumps([FORMAT_VERSION, shard_size, ORDER_SEED, plan.classes]).encode())
    for split in sorted(plan.splits):
        for rel, label in sorted(plan.splits[split]):
            h.update(json.dumps([split, rel, label, stats.get(rel)]).encode())
    return h.hexdigest()


def _unchanged_dataset(out: str, fingerprint: str) -> dict[str, Any] | None:
    """The existing manifest if `out` is a complete dataset prepared from the same source and settings."""
    try:
        manifest = load_manifest(out)
    except DatasetError:
        return None
    if manifest.get("fingerprint") != fingerprint:
        return None
    fs, root = storage.filesystem(out)
    for meta in manifest["splits"].values():
        for shard in meta["shards"]:
            if not fs.exists(posixpath.join(root, shard["path"])):
                return None
    return manifest


class _Journal:
    """Per-shard progress records of an unfinished preparation, so a re-run continues after the last one.

    Records live under `OUT/.progress/<fingerprint>/`, so a changed source never resumes from another
    source's shards; each is written atomically after its shard, and all are removed once the manifest is.
    """

    def __init__(self, out: str, fingerprint: str) -> None:
        self.url = storage.join(out, ".progress", fingerprint[:24])
        self.out = out

    def record(self, split: str, shard: dict, consumed: int, rejected: list, reencoded: int) -> None:
        entry = {"shard": shard, "consumed": consumed, "rejected": rejected, "reencoded": reencoded}
        index = int(shard["path"].rsplit("-", 1)[1].split(".")[0])
        storage.write_bytes_atomic(storage.join(self.url, f"{split}-{index:05d}.json"), json.dumps(entry).encode())

    def resume(self, split: str) -> tuple[list[dict], int, list[dict], int]:
        """(shards kept, source items they consumed, rejections among those, re-encoded count)."""
        fs, root = storage.filesystem(self.url)
        out_fs, out_root = storage.filesystem(self.out)
        shards, rejected, consumed, reencoded = [], [], 0, 0
        index = 0
        while True:
            path = posixpath.join(root, f"{split}-{index:05d}.json")
            if not fs.exists(path):
                break
            with fs.open(path, "rb") as f:
                entry = json.loads(f.read())
            shard = entry["shard"]
            info = out_fs.info(posixpath.join(out_root, shard["path"])) if out_fs.exists(
                posixpath.join(out_root, shard["path"])) else None
            if info is None or info.get("size") != shard["size"]:
                break
            shards.append(shard)
            rejected.extend(entry["rejected"])
            consumed, reencoded = entry["consumed"], entry["reencoded"]
            index += 1
        if shards:
            log.info("resuming %s/%s after %d shards (%d source files already done)", self.out, split,
                     len(shards), consumed)
        return shards, consumed, rejected, reencoded

    def clear(self) -> None:
        fs, root = storage.filesystem(storage.join(self.out, ".progress"))
        if fs.exists(root):
            fs.rm(root, recursive=True)


def _ray_ordered_map(fn, tasks, in_flight: int | None = None):
    """fn(*task) as Ray tasks, yielded in task order with a bounded number in flight."""
    from collections import deque

    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, include_dashboard=False, configure_logging=False,
                 log_to_driver=False)
    remote = ray.remote(fn)
    in_flight = in_flight or max(4, int(ray.cluster_resources().get("CPU", 1)) * 4)
    it = iter(tasks)
    pending = deque(remote.remote(*t) for t, _ in zip(it, range(in_flight)))
    while pending:
        result = ray.get(pending.popleft())
        nxt = next(it, None)
        if nxt is not None:
            pending.append(remote.remote(*nxt))
        yield result


def summary_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The CONTRACT JSON summary of a manifest."""
    return {"num_classes": manifest["num_classes"], "classes": list(manifest["classes"]),
            "splits": {k: {"num_images": v["num_images"]} for k, v in manifest["splits"].items()},
            "rejected": list(manifest["rejected"])}


def _remove_stale_shards(out: str, manifest: dict[str, Any]) -> None:
    """Shards of an earlier, larger preparation that the new manifest does not list (best effort)."""
    keep = {s["path"] for v in manifest["splits"].values() for s in v["shards"]}
    fs, root = storage.filesystem(out)
    for split in manifest["splits"]:
        base = posixpath.join(root, split)
        try:
            names = fs.ls(base, detail=False)
        except FileNotFoundError:
            continue
        except Exception:  # noqa: BLE001
            continue
        for full in names:
            name = posixpath.basename(str(full).rstrip("/"))
            if name.startswith("part-") and name.endswith(".parquet") and f"{split}/{name}" not in keep:
                try:
                    fs.rm(str(full))
                except Exception:  # noqa: BLE001
                    log.warning("could not remove stale shard %s", full)
