"""`ppipe data prepare`: an image-classification source -> checked Parquet shards + manifest.json.

Which sources are accepted and how their classes and labels are read: `ppipe.data.sources`. Every image file is
decoded completely (`ppipe.data.image_check`); files that do not decode are listed in `rejected` with a reason and
the run still succeeds. Output: `OUT/<split>/part-NNNNN.parquet` (`ppipe.data.shards`), then `OUT/manifest.json`
last (`ppipe.data.manifest`). A previous manifest in OUT is removed first, so an interrupted run never leaves a
dataset that looks complete; a re-run resumes after the shards already written, and a re-run on an unchanged
source does nothing (see `prepare_dataset`).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import posixpath
import random
from functools import lru_cache
from typing import Any, Callable

from ppipe import console, storage
from ppipe.data._pool import ordered_map
from ppipe.data.image_check import IMAGE_EXTENSIONS, check_image
from ppipe.data.local_tree import printable
from ppipe.data.manifest import FORMAT, FORMAT_VERSION, DatasetError, load_manifest, manifest_url
from ppipe.data.shards import SCHEMA_FIELDS, Journal, ShardWriter, remove_stale_shards
from ppipe.data.sources import SPLITS, UNLABELED, Plan, Source, discover

__all__ = ["prepare_dataset", "load_manifest", "DatasetError", "IMAGE_EXTENSIONS", "check_image", "summary_of"]

log = logging.getLogger(__name__)

ORDER_SEED = 0  # fixed shuffle of the training rows across shards, so each shard mixes classes
_CHUNK = 32  # files per worker task


@lru_cache(maxsize=8)
def _source_fs(source: str):
    return storage.filesystem(source)


def _check_chunk(source: str, rels: list[str]) -> list[tuple[bytes | None, str | None, bool]]:
    fs, root = _source_fs(source)
    results = []
    for rel in rels:
        try:
            with fs.open(posixpath.join(root, rel), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            results.append((None, "file not found", False))
            continue
        except Exception as exc:  # noqa: BLE001
            results.append((None, f"cannot read file: {type(exc).__name__}: {exc}", False))
            continue
        results.append(check_image(data))
    return results


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
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if executor not in ("processes", "ray"):
        raise ValueError(f"executor must be 'processes' or 'ray', got {executor!r}")
    source, out = str(source), str(out)
    workers = (os.cpu_count() or 1) if num_workers is None else int(num_workers)
    _source_fs.cache_clear()  # credentials or endpoints may have changed since a previous call
    src = Source(source, out)
    plan = discover(src)
    fingerprint = _fingerprint(src, plan, shard_size)
    done = _unchanged_dataset(out, fingerprint)
    if done is not None:
        log.info("%s is already prepared from this source (fingerprint %s): nothing to do", out, fingerprint[:12])
        return summary_of(done)

    # A dataset being (re)written must not look complete: the old manifest goes first.
    _remove_if_exists(manifest_url(out))
    mapper = _ray_ordered_map if executor == "ray" else (
        lambda fn, tasks: ordered_map(fn, tasks, workers if workers > 1 else 0))
    run = _SplitWriter(source, out, shard_size, Journal(out, fingerprint), mapper)
    split_meta: dict[str, dict[str, Any]] = {}
    rejected: list[dict[str, str]] = []
    total = sum(len(v) for v in plan.splits.values())
    with console.progress("prepare", total, "images", enabled=progress) as bar:
        for split, items in _ordered_items(plan):
            split_meta[split], split_rejected = run.write(split, items, bar)
            split_meta[split]["layout"] = plan.layout[split]
            rejected += split_rejected
    rejected += plan.rejected
    rejected.sort(key=lambda r: r["path"])
    if sum(m["num_images"] for m in split_meta.values()) == 0:
        raise DatasetError(f"dataset source {source!r}: none of its {total} image files could be decoded "
                           f"(e.g. {rejected[0]['path']}: {rejected[0]['reason']})")
    manifest = _manifest(source, fingerprint, plan, split_meta, rejected)
    storage.write_bytes_atomic(manifest_url(out), json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8"))
    run.journal.clear()
    remove_stale_shards(out, manifest)
    if rejected:
        log.warning("%d files rejected (see manifest.json 'rejected')", len(rejected))
    n = {k: v["num_images"] for k, v in split_meta.items()}
    log.info("prepared %s: %s images in %d classes, %d rejected", out, n, len(plan.classes), len(rejected))
    return summary_of(manifest)


def _ordered_items(plan: Plan):
    """(split, items) in a fixed order: train first, its rows shuffled (`ORDER_SEED`), the others sorted."""
    for split in sorted(plan.splits, key=lambda s: (SPLITS.index(s) if s in SPLITS else 99, s)):
        items = sorted(plan.splits[split])
        if split == "train":
            random.Random(ORDER_SEED).shuffle(items)
        yield split, items


class _SplitWriter:
    """Checks one split's files (in worker processes or Ray tasks) and writes the good ones into shards,
    resuming after the shards an interrupted run journaled."""

    def __init__(self, source: str, out: str, shard_size: int, journal: Journal, mapper: Callable) -> None:
        self.source, self.out, self.shard_size = source, out, shard_size
        self.journal, self.mapper = journal, mapper

    def write(self, split: str, items: list[tuple[str, int]], bar) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """(the split's manifest entry, its rejected files)."""
        kept_shards, consumed, kept_rejected, reencoded = self.journal.resume(split)
        rejected, pending = list(kept_rejected), []
        counts = {"reencoded": reencoded, "unlabeled": _unlabeled_written(items[:consumed], kept_rejected)}

        def on_flush(shard, upto):
            self.journal.record(split, shard, upto, list(pending), counts["reencoded"])
            pending.clear()

        writer = ShardWriter(self.out, split, self.shard_size, on_flush=on_flush, shards=kept_shards)
        bar.update(consumed)
        todo = items[consumed:]
        chunks = [todo[i:i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
        tasks = ((self.source, [rel for rel, _ in chunk]) for chunk in chunks)
        index = consumed
        for chunk, results in zip(chunks, self.mapper(_check_chunk, tasks)):
            for (rel, label), (data, reason, converted) in zip(chunk, results):
                if data is None:
                    rejected.append({"path": rel, "reason": reason})
                    pending.append(rejected[-1])
                else:
                    counts["reencoded"] += converted
                    counts["unlabeled"] += label == UNLABELED
                    writer.add(data, label, rel, index)
                index += 1
            bar.update(len(chunk))
        writer.flush(consumed=index)
        meta = {"num_images": sum(s["num_rows"] for s in writer.shards), "num_unlabeled": counts["unlabeled"],
                "reencoded": counts["reencoded"], "shards": writer.shards}
        return meta, rejected


def _unlabeled_written(items: list[tuple[str, int]], rejected: list[dict[str, str]]) -> int:
    """Unlabeled images among `items` that made it into shards (those not rejected)."""
    refused = {r["path"] for r in rejected}
    return sum(1 for rel, lab in items if lab == UNLABELED and rel not in refused)


def _manifest(source: str, fingerprint: str, plan: Plan, splits: dict[str, Any],
              rejected: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": printable(source),  # the manifest is UTF-8; a local path may not be
        "fingerprint": fingerprint,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "schema": dict(SCHEMA_FIELDS),
        "num_classes": len(plan.classes),
        "classes": plan.classes,
        "class_names": [plan.descriptions.get(c, c) for c in plan.classes],
        "splits": splits,
        "rejected": rejected,
    }


def _remove_if_exists(url: str) -> None:
    fs, path = storage.filesystem(url)
    if fs.exists(path):
        fs.rm(path)


def _fingerprint(src: Source, plan: Plan, shard_size: int) -> str:
    """What the output depends on: settings, and every planned file's path, label, size and stamp."""
    import hashlib

    stats = src.file_stats([rel for items in plan.splits.values() for rel, _ in items])
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
