"""Training / evaluation input pipeline over a prepared dataset (local path or fsspec URL such as s3://).

Sample order for one epoch is a pure function of (seed, epoch): the shard order is permuted and the rows of
every shard are permuted, giving one global sequence. Rank r of W takes a contiguous slice of it, so it reads
only the shards (and, inside them, only the Parquet row groups) it needs:

* pad=True (training): the sequence is extended by repeating its head until its length is a multiple of W,
  and every rank gets exactly ceil(N / W) samples, like Paddle's DistributedBatchSampler, because collective
  training needs equal step counts on every rank.
* pad=False (evaluation): the N samples are split into W disjoint slices whose sizes differ by at most one;
  their union is the split.

Within a rank's slice, samples are shuffled again inside windows of `shuffle_buffer` samples (spanning
several shards), so a batch mixes rows from several shards. shuffle=False keeps the stored order.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import numpy as np

from ppipe import storage
from ppipe.data._pool import ordered_map
from ppipe.data.manifest import DatasetError, load_manifest, split_info
from ppipe.data.batch_ops import BatchCompose, create_batch_operators
from ppipe.data.transforms import Compose, create_operators

__all__ = ["iter_samples", "iter_batches", "num_samples", "num_batches", "split_size", "class_names",
           "epoch_plan"]

DEFAULT_SHUFFLE_BUFFER = 2048  # samples held in memory per rank for the within-part shuffle


def split_size(prepared: str, split: str) -> int:
    """Number of images in `split` of a prepared dataset."""
    return int(split_info(load_manifest(prepared), split, prepared)["num_images"])


def class_names(prepared: str) -> list[str]:
    """The class list (label i is classes[i]) of a prepared dataset."""
    return list(load_manifest(prepared)["classes"])


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size) with world_size >= 1, got rank={rank}, "
                         f"world_size={world_size}")


def _rank_bounds(n: int, rank: int, world_size: int, pad: bool) -> tuple[int, int, int]:
    """(start, end, padded length) of rank's slice of the (padded) global sequence."""
    if pad:
        per = math.ceil(n / world_size) if n else 0
        return rank * per, (rank + 1) * per, per * world_size
    return rank * n // world_size, (rank + 1) * n // world_size, n


def num_samples(prepared: str, split: str, *, rank: int = 0, world_size: int = 1, pad: bool = True) -> int:
    """Number of samples `iter_samples` yields on `rank` in any epoch."""
    _check_rank(rank, world_size)
    start, end, _ = _rank_bounds(split_size(prepared, split), rank, world_size, pad)
    return end - start


def num_batches(prepared: str, split: str, batch_size: int, *, rank: int = 0, world_size: int = 1,
                drop_last: bool = False, pad: bool = True) -> int:
    """Number of batches `iter_batches` yields on `rank` in any epoch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = num_samples(prepared, split, rank=rank, world_size=world_size, pad=pad)
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def epoch_plan(manifest: dict[str, Any], split: str, *, rank: int = 0, world_size: int = 1, epoch: int = 0,
               shuffle: bool = True, seed: int = 0, pad: bool = True,
               shuffle_buffer: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(shard index, row index) of every sample rank yields this epoch, in order. Pure; reads nothing."""
    _check_rank(rank, world_size)
    shards = split_info(manifest, split)["shards"]
    rows = np.array([s["num_rows"] for s in shards], dtype=np.int64)
    n = int(rows.sum())
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rng = np.random.default_rng([int(seed), int(epoch)]) if shuffle else None
    shard_order = rng.permutation(len(shards)) if shuffle else np.arange(len(shards))
    shard_ids = np.repeat(shard_order, rows[shard_order])
    row_ids = np.concatenate([rng.permutation(rows[s]) if shuffle else np.arange(rows[s]) for s in shard_order])
    start, end, total = _rank_bounds(n, rank, world_size, pad)
    if total > n:  # pad by repeating from the head (np.resize cycles when total > 2n)
        shard_ids, row_ids = np.resize(shard_ids, total), np.resize(row_ids, total)
    shard_ids, row_ids = shard_ids[start:end].copy(), row_ids[start:end].copy()
    if shuffle and len(shard_ids) > 1:
        window = int(shuffle_buffer or DEFAULT_SHUFFLE_BUFFER)
        local = np.random.default_rng([int(seed), int(epoch), int(rank), int(world_size), 1])
        for a in range(0, len(shard_ids), window):
            p = local.permutation(min(window, len(shard_ids) - a)) + a
            shard_ids[a:a + len(p)], row_ids[a:a + len(p)] = shard_ids[p], row_ids[p]
    return shard_ids, row_ids


def _read_rows(prepared: str, shard: dict[str, Any], rows: np.ndarray) -> dict[int, tuple[bytes, int]]:
    """The (image, label) of `rows` of one shard, reading only the row groups that hold them."""
    import pyarrow.parquet as pq

    url = storage.join(prepared, shard["path"])
    fs, path = storage.filesystem(url)
    try:
        f = fs.open(path, "rb")
    except FileNotFoundError:
        raise DatasetError(f"prepared dataset {prepared!r} lists shard {shard['path']!r} but it is missing") from None
    with f:
        pf = pq.ParquetFile(f)
        md = pf.metadata
        if md.num_rows != shard["num_rows"]:
            raise DatasetError(f"shard {url!r} has {md.num_rows} rows, manifest says {shard['num_rows']}")
        starts = np.cumsum([0] + [md.row_group(g).num_rows for g in range(md.num_row_groups)])
        uniq = np.unique(rows)
        groups_of = np.searchsorted(starts, uniq, side="right") - 1
        groups = sorted(set(int(g) for g in groups_of))
        table = pf.read_row_groups(groups, columns=["image", "label"])
    base, pos = {}, 0
    for g in groups:
        base[g] = pos
        pos += int(starts[g + 1] - starts[g])
    images, labels = table.column("image"), table.column("label")
    out = {}
    for r, g in zip(uniq.tolist(), groups_of.tolist()):
        p = base[g] + r - int(starts[g])
        out[r] = (images[p].as_py(), int(labels[p].as_py()))
    return out


def iter_samples(prepared: str, split: str, *, rank: int = 0, world_size: int = 1, epoch: int = 0,
                 shuffle: bool = True, seed: int = 0, pad: bool = True,
                 shuffle_buffer: int | None = None) -> Iterator[tuple[bytes, int]]:
    """(encoded image bytes, label) of this rank's part of `split` for `epoch` (see the module docstring)."""
    prepared = str(prepared)
    manifest = load_manifest(prepared)
    shards = split_info(manifest, split, prepared)["shards"]
    shard_ids, row_ids = epoch_plan(manifest, split, rank=rank, world_size=world_size, epoch=epoch,
                                    shuffle=shuffle, seed=seed, pad=pad, shuffle_buffer=shuffle_buffer)
    window = int(shuffle_buffer or DEFAULT_SHUFFLE_BUFFER)
    for a in range(0, len(shard_ids), window):
        s_ids, r_ids = shard_ids[a:a + window], row_ids[a:a + window]
        loaded: dict[int, dict[int, tuple[bytes, int]]] = {}
        for s in np.unique(s_ids).tolist():
            loaded[s] = _read_rows(prepared, shards[s], r_ids[s_ids == s])
        for s, r in zip(s_ids.tolist(), r_ids.tolist()):
            yield loaded[s][r]


# --------------------------------------------------------------------------------------------- batches

_WORKER_OPS: Compose | None = None
_WORKER_BATCH_OPS: BatchCompose | None = None


def _init_worker(transform_ops: Any, batch_ops: BatchCompose | None = None) -> None:
    global _WORKER_OPS, _WORKER_BATCH_OPS
    try:  # one image per call in each worker: OpenCV's own thread pool would only oversubscribe the cores
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass
    _WORKER_OPS = transform_ops if isinstance(transform_ops, Compose) else create_operators(transform_ops)
    _WORKER_BATCH_OPS = batch_ops


def _batch_seed(seed: int, epoch: int, rank: int, index: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(epoch), int(rank), int(index), 2]).generate_state(1)[0])


def _worker_transform(raw: Sequence[tuple[bytes, int]], batch_seed: int) -> tuple[np.ndarray, np.ndarray]:
    assert _WORKER_OPS is not None, "worker not initialised"
    return _transform_batch(_WORKER_OPS, raw, batch_seed, _WORKER_BATCH_OPS)


def _batch_plan(ops: Compose) -> tuple[Compose, Any, bool]:
    """How a batch is assembled from `ops`: (per-sample ops, a NormalizeImage to apply to the whole batch or
    None, whether the stacked samples still need HWC -> CHW).

    Like PaddleClas's ImageNetDataset, which transposes every sample to CHW after its ops, samples that end
    channels-last are made CHW; a list ending in ToCHWImage (or a CHW NormalizeImage) is CHW already. A
    channels-last NormalizeImage at the end (optionally followed by ToCHWImage) is applied once per batch to
    the uint8 stack, fused with the transpose: the same arithmetic, with a quarter of the memory traffic of
    stacking float images and transposing them afterwards.
    """
    from ppipe.data.transforms import NormalizeImage, ToCHWImage

    body = list(ops.ops)
    ends_chw = bool(body) and isinstance(body[-1], ToCHWImage)
    core = body[:-1] if ends_chw else body
    if core and isinstance(core[-1], NormalizeImage) and core[-1].order != "chw" and core[-1].channel_num == 3:
        return Compose.sharing_rng(ops, core[:-1]), core[-1], False
    already_chw = ends_chw or (bool(body) and isinstance(body[-1], NormalizeImage) and body[-1].order == "chw")
    return ops, None, not already_chw


def _normalize_batch_nchw(stack: np.ndarray, norm) -> np.ndarray:
    """NormalizeImage's arithmetic on an [N, H, W, C] uint8 stack, written straight into [N, C, H, W] float."""
    n, h, w, c = stack.shape
    out = np.empty((n, c, h, w), dtype=np.float32)
    for ch in range(c):
        plane = out[:, ch]
        np.multiply(stack[..., ch], norm.scale, out=plane, dtype=np.float32)
        plane -= norm.mean.reshape(-1)[ch]
        plane /= norm.std.reshape(-1)[ch]
    return out.astype(norm.output_dtype, copy=False)


def _transform_batch(ops: Compose, raw: Sequence[tuple[bytes, int]], batch_seed: int,
                     batch_ops: BatchCompose | None = None) -> tuple[np.ndarray, np.ndarray]:
    body, normalize, transpose = _batch_plan(ops)
    ops.reseed(batch_seed)
    images = [body(img) for img, _ in raw]
    shapes = {np.shape(x) for x in images}
    if len(shapes) != 1:
        raise ValueError(f"transform ops produced images of different shapes {sorted(shapes)}: end the list with "
                         f"fixed-size ops (e.g. RandCropImage/CropImage, NormalizeImage, ToCHWImage)")
    stack = np.stack(images)
    if stack.ndim != 4:
        raise ValueError(f"transform ops produced {stack.ndim - 1}-d images of shape {stack.shape[1:]}; "
                         f"expected H x W x C (or C x H x W after ToCHWImage)")
    if normalize is not None:
        images = _normalize_batch_nchw(stack, normalize)
    elif transpose:
        images = np.ascontiguousarray(stack.transpose(0, 3, 1, 2), dtype=np.float32)
    else:
        images = stack.astype(np.float32, copy=False)
    labels = np.fromiter((lab for _, lab in raw), dtype=np.int64, count=len(raw))
    if batch_ops is None:
        return images, labels
    batch_ops.reseed(int(np.random.SeedSequence([batch_seed, 3]).generate_state(1)[0]))
    images, targets = batch_ops(images, labels)
    return images.astype(np.float32, copy=False), targets.astype(np.float32, copy=False)


def _chunks(samples: Iterator[tuple[bytes, int]], size: int, drop_last: bool) -> Iterator[list]:
    buf: list = []
    for s in samples:
        buf.append(s)
        if len(buf) == size:
            yield buf
            buf = []
    if buf and not drop_last:
        yield buf


def iter_batches(prepared: str, split: str, transform_ops: Any, batch_size: int, *, rank: int = 0,
                 world_size: int = 1, epoch: int = 0, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                 pad: bool = True, num_workers: int = 0, shuffle_buffer: int | None = None,
                 batch_transform_ops: Any = None,
                 class_num: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(images float32 [N, C, H, W], labels int64 [N]) batches of this rank's samples for `epoch`.

    `transform_ops` is a PaddleClas `transform_ops` list (or a `create_operators` result) ending in a
    fixed-size CHW image. The random augmentations of batch i are seeded from (seed, epoch, rank, i), so the
    output is the same for any `num_workers` (0: transform in this process; >0: that many worker processes).

    `batch_transform_ops` is a PaddleClas `batch_transform_ops` list (MixupOperator, CutmixOperator,
    OpSampler; or a `create_batch_operators` result), applied to each batch after the per-sample ops and
    seeded from the same per-batch seed. With batch operators the labels are soft targets float32
    [N, class_num]; `class_num` (PaddleClas: Arch.class_num) defaults to the dataset's number of classes.
    None or an empty list: no batch operators, int64 labels as before.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # Built here also when workers transform: a bad op list fails now, with a clear error.
    ops = transform_ops if isinstance(transform_ops, Compose) else create_operators(transform_ops)
    batch_ops: BatchCompose | None = None
    if isinstance(batch_transform_ops, BatchCompose):
        batch_ops = batch_transform_ops if len(batch_transform_ops) else None
    elif batch_transform_ops:
        if class_num is None:
            class_num = len(class_names(str(prepared)))
        batch_ops = create_batch_operators(batch_transform_ops, class_num=class_num)
    samples = iter_samples(prepared, split, rank=rank, world_size=world_size, epoch=epoch, shuffle=shuffle,
                           seed=seed, pad=pad, shuffle_buffer=shuffle_buffer)
    tasks = ((raw, _batch_seed(seed, epoch, rank, i)) for i, raw in enumerate(_chunks(samples, batch_size, drop_last)))
    if num_workers <= 0:
        for raw, batch_seed in tasks:
            yield _transform_batch(ops, raw, batch_seed, batch_ops)
        return
    yield from ordered_map(_worker_transform, tasks, int(num_workers), initializer=_init_worker,
                           initargs=(transform_ops, batch_ops), in_flight_per_worker=2)
