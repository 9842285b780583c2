"""Writing a prepared dataset's shards: Parquet files of checked images (image: binary, label: int32, path:
string), each written atomically, the journal that lets an interrupted preparation resume after the shards it
finished, and the removal of shards a new manifest no longer lists."""

from __future__ import annotations

import json
import logging
import posixpath
from typing import Any

from ppipe import storage

__all__ = ["Journal", "MAX_SHARD_BYTES", "SCHEMA_FIELDS", "ShardWriter", "remove_stale_shards", "write_shard"]

log = logging.getLogger(__name__)

MAX_SHARD_BYTES = 1 << 30  # Parquet `binary` columns hold < 2 GiB per chunk


class ShardWriter:
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
        write_shard(storage.join(self.out, rel), data)
        shard = {"path": rel, "num_rows": len(self.images), "sha256": storage.sha256_bytes(data), "size": len(data)}
        self.shards.append(shard)
        self.images, self.labels, self.paths, self.nbytes = [], [], [], 0
        if self.on_flush is not None:
            self.on_flush(shard, consumed)


SCHEMA_FIELDS = (("image", "binary"), ("label", "int32"), ("path", "string"))


def _parquet_bytes(images: list[bytes], labels: list[int], paths: list[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in SCHEMA_FIELDS])
    table = pa.Table.from_arrays([pa.array(column, field.type) for column, field in
                                  zip((images, labels, paths), schema)], schema=schema)
    sink = pa.BufferOutputStream()
    # Images are already compressed; a row group of at most 256 rows lets readers fetch parts of a shard.
    pq.write_table(table, sink, compression={"image": "none", "label": "snappy", "path": "snappy"},
                   row_group_size=256)
    return sink.getvalue().to_pybytes()


def write_shard(url: str, data: bytes) -> None:
    """One shard's bytes, atomically (a shard is complete or absent)."""
    storage.write_bytes_atomic(url, data)


class Journal:
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


def remove_stale_shards(out: str, manifest: dict[str, Any]) -> None:
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
