"""Training / evaluation input pipeline over a prepared dataset (local path, fsspec URL such as s3://, or an
opened `PreparedDataset`): each rank's samples of a split for an epoch (which ones and in which order:
`ppipe.data.sampling`), read from the shards and transformed into batches.

Every function here takes `prepared` as a URL or a `PreparedDataset`; pass the latter (`open_prepared`) where a
dataset is read more than once, so its manifest is read once.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from ppipe import storage
from ppipe.data._pool import ordered_map
from ppipe.data.batch_ops import BatchCompose, create_batch_operators
from ppipe.data.manifest import DatasetError
from ppipe.data.prepared import Prepared, PreparedDataset, open_prepared
from ppipe.data.sampling import DEFAULT_SHUFFLE_BUFFER
from ppipe.data.transforms import Compose, create_operators

__all__ = ["iter_samples", "iter_batches", "num_samples", "num_batches", "split_size", "class_names",
           "epoch_plan"]


def split_size(prepared: Prepared, split: str) -> int:
    """Number of images in `split` of a prepared dataset."""
    return open_prepared(prepared).num_images(split)


def class_names(prepared: Prepared) -> list[str]:
    """The class list (label i is classes[i]) of a prepared dataset."""
    return open_prepared(prepared).classes


def num_samples(prepared: Prepared, split: str, *, rank: int = 0, world_size: int = 1, pad: bool = True) -> int:
    """Number of samples `iter_samples` yields on `rank` in any epoch."""
    return open_prepared(prepared).num_samples(split, rank=rank, world_size=world_size, pad=pad)


def num_batches(prepared: Prepared, split: str, batch_size: int, *, rank: int = 0, world_size: int = 1,
                drop_last: bool = False, pad: bool = True) -> int:
    """Number of batches `iter_batches` yields on `rank` in any epoch."""
    return open_prepared(prepared).num_batches(split, batch_size, rank=rank, world_size=world_size,
                                               drop_last=drop_last, pad=pad)


def epoch_plan(manifest: dict[str, Any] | PreparedDataset, split: str, **order: Any) -> tuple[np.ndarray, np.ndarray]:
    """(shard index, row index) of every sample a rank yields this epoch, in order (`PreparedDataset.epoch_plan`
    of an opened dataset, or of a manifest dict)."""
    dataset = manifest if isinstance(manifest, PreparedDataset) else PreparedDataset("", manifest)
    return dataset.epoch_plan(split, **order)


def _read_rows(dataset: PreparedDataset, shard: dict[str, Any], rows: np.ndarray) -> dict[int, tuple[bytes, int]]:
    """The (image, label) of `rows` of one shard, reading only the row groups that hold them."""
    import pyarrow.parquet as pq

    url = dataset.shard_url(shard)
    fs, path = storage.filesystem(url)
    try:
        f = fs.open(path, "rb")
    except FileNotFoundError:
        raise DatasetError(f"prepared dataset {dataset.url!r} lists shard {shard['path']!r} but it is "
                           f"missing") from None
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


def iter_samples(prepared: Prepared, split: str, *, rank: int = 0, world_size: int = 1, epoch: int = 0,
                 shuffle: bool = True, seed: int = 0, pad: bool = True,
                 shuffle_buffer: int | None = None) -> Iterator[tuple[bytes, int]]:
    """(encoded image bytes, label) of this rank's part of `split` for `epoch` (see `ppipe.data.sampling`)."""
    dataset = open_prepared(prepared)
    shards = dataset.shards(split)
    shard_ids, row_ids = dataset.epoch_plan(split, rank=rank, world_size=world_size, epoch=epoch, shuffle=shuffle,
                                            seed=seed, pad=pad, shuffle_buffer=shuffle_buffer)
    window = int(shuffle_buffer or DEFAULT_SHUFFLE_BUFFER)
    for a in range(0, len(shard_ids), window):
        s_ids, r_ids = shard_ids[a:a + window], row_ids[a:a + window]
        loaded: dict[int, dict[int, tuple[bytes, int]]] = {}
        for s in np.unique(s_ids).tolist():
            loaded[s] = _read_rows(dataset, shards[s], r_ids[s_ids == s])
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


def _worker_transform(raw: Sequence[tuple[bytes, int]], batch_seed: int) -> tuple[Any, np.ndarray]:
    assert _WORKER_OPS is not None, "worker not initialised"
    blocks = []

    def allocate(shape, dtype):
        blocks.append(_SharedBlock.create(shape, dtype))
        return blocks[-1].array

    images, labels = _transform_batch(_WORKER_OPS, raw, batch_seed, _WORKER_BATCH_OPS, allocate=allocate)
    handle = None
    for block in blocks:
        if block.array is images:
            handle = block.detach()
        else:
            block.discard()
    if handle is None:  # batch operators made a new array
        handle = _SharedBlock.from_array(images).detach()
    return handle, labels


class _SharedBlock:
    """A worker's output batch in shared memory: written in place, handed to the main process by name.
    Pickling a float batch through the pool's pipe (38 MB for 64 images at 224) costs more than making it."""

    def __init__(self, shm, shape, dtype) -> None:
        self.shm = shm
        self.array = np.ndarray(shape, dtype, buffer=shm.buf)

    @classmethod
    def create(cls, shape, dtype) -> "_SharedBlock":
        from multiprocessing import shared_memory

        nbytes = max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize)
        return cls(shared_memory.SharedMemory(create=True, size=nbytes), tuple(shape), np.dtype(dtype))

    @classmethod
    def from_array(cls, array: np.ndarray) -> "_SharedBlock":
        block = cls.create(array.shape, array.dtype)
        block.array[...] = array
        return block

    def detach(self) -> tuple[str, tuple, str]:
        handle = (self.shm.name, self.array.shape, self.array.dtype.str)
        del self.array
        self.shm.close()
        _untrack(handle[0])  # the consumer unlinks it; this process must not remove it at exit
        return handle

    def discard(self) -> None:
        del self.array
        self.shm.close()
        self.shm.unlink()


def _from_shared(handle: tuple[str, tuple, str]) -> np.ndarray:
    """The batch a worker left in shared memory, as an array over that memory (no copy); the block is
    released when the array (and every view of it) is garbage-collected."""
    import weakref
    from multiprocessing import shared_memory

    name, shape, dtype = handle
    shm = shared_memory.SharedMemory(name=name)  # registered with the resource tracker until unlink()
    array = np.ndarray(shape, np.dtype(dtype), buffer=shm.buf)
    weakref.finalize(array, _release_shared, shm)
    return array


def _release_shared(shm) -> None:
    try:
        shm.close()
    except BufferError:  # pragma: no cover - a view outlived its base; the OS frees it at exit
        return
    try:
        shm.unlink()
    except FileNotFoundError:  # pragma: no cover
        pass


def _untrack(name: str) -> None:
    try:
        from multiprocessing import resource_tracker

        resource_tracker.unregister(f"/{name}", "shared_memory")
    except Exception:  # noqa: BLE001 - tracking is an optimisation of cleanup, not correctness
        pass


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


class _NormalizeInto:
    """NormalizeImage's arithmetic on one uint8 HWC image, written into its CHW slot of a float batch.

    (v * scale - mean) / std is applied as v * (scale / std) - mean / std in one SIMD pass per channel
    (OpenCV's addWeighted with a float output), straight from the uint8 pixels: no float HWC copy, no stack
    of float images, no transpose. Equal to NormalizeImage within float32 rounding (~1e-7).
    """

    def __init__(self, norm) -> None:
        std = norm.std.reshape(-1).astype(np.float64)
        self.alpha = (float(norm.scale) / std).tolist()
        self.beta = (-norm.mean.reshape(-1).astype(np.float64) / std).tolist()

    def __call__(self, img: np.ndarray, out: np.ndarray) -> None:
        import cv2

        if img.dtype != np.uint8 or out.dtype != np.float32:
            for ch in range(img.shape[2]):
                out[ch] = img[..., ch].astype(np.float64) * self.alpha[ch] + self.beta[ch]
            return
        for ch, plane in enumerate(cv2.split(np.ascontiguousarray(img))):
            cv2.addWeighted(plane, self.alpha[ch], plane, 0.0, self.beta[ch], dst=out[ch], dtype=cv2.CV_32F)


def _transform_batch(ops: Compose, raw: Sequence[tuple[bytes, int]], batch_seed: int,
                     batch_ops: BatchCompose | None = None,
                     allocate=np.empty) -> tuple[np.ndarray, np.ndarray]:
    """One batch: per-sample ops, then [N, C, H, W] (see `_batch_plan`), then batch ops.
    `allocate(shape, dtype)` makes the output array (a shared-memory one in worker processes)."""
    body, normalize, transpose = _batch_plan(ops)
    ops.reseed(batch_seed)
    images = None
    first_shape = None
    kept = []
    for i, (img, _) in enumerate(raw):
        x = np.asarray(body(img))
        if first_shape is None:
            first_shape = x.shape
            if x.ndim != 3:
                raise ValueError(f"transform ops produced {x.ndim}-d images of shape {x.shape}; expected "
                                 f"H x W x C (or C x H x W after ToCHWImage)")
        elif x.shape != first_shape:
            raise ValueError(f"transform ops produced images of different shapes {sorted({first_shape, x.shape})}: "
                             f"end the list with fixed-size ops (e.g. RandCropImage/CropImage, NormalizeImage, "
                             f"ToCHWImage)")
        if normalize is not None:
            if images is None:
                h, w, c = first_shape
                images = allocate((len(raw), c, h, w), normalize.output_dtype)
                fuse = _NormalizeInto(normalize)
            fuse(x, images[i])
        else:
            kept.append(x)
    if normalize is None:
        stack = np.stack(kept)
        stack = stack.transpose(0, 3, 1, 2) if transpose else stack
        images = allocate(stack.shape, np.float32)
        images[...] = stack
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


def _batch_operators(batch_transform_ops: Any, class_num: int) -> BatchCompose | None:
    """The batch operators of `iter_batches` (None: none), built from a list or given already built."""
    if isinstance(batch_transform_ops, BatchCompose):
        return batch_transform_ops if len(batch_transform_ops) else None
    return create_batch_operators(batch_transform_ops, class_num=class_num) if batch_transform_ops else None


def iter_batches(prepared: Prepared, split: str, transform_ops: Any, batch_size: int, *, rank: int = 0,
                 world_size: int = 1, epoch: int = 0, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                 pad: bool = True, num_workers: int = 0, shuffle_buffer: int | None = None,
                 batch_transform_ops: Any = None, start_batch: int = 0,
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

    `start_batch` skips the epoch's first batches without decoding them (resuming mid-epoch); the batches
    after it are identical to those of a full pass.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    # Built here also when workers transform: a bad op list fails now, with a clear error.
    ops = transform_ops if isinstance(transform_ops, Compose) else create_operators(transform_ops)
    dataset = open_prepared(prepared)
    batch_ops = _batch_operators(batch_transform_ops, class_num or dataset.num_classes)
    samples = iter_samples(dataset, split, rank=rank, world_size=world_size, epoch=epoch, shuffle=shuffle,
                           seed=seed, pad=pad, shuffle_buffer=shuffle_buffer)
    # Batches before `start_batch` (a run resuming mid-epoch) are skipped undecoded; the rest get the seeds
    # they would have had, so the resumed epoch continues exactly where the checkpoint left it.
    tasks = ((raw, _batch_seed(seed, epoch, rank, i)) for i, raw in enumerate(_chunks(samples, batch_size, drop_last))
             if i >= start_batch)
    if num_workers <= 0:
        for raw, batch_seed in tasks:
            yield _transform_batch(ops, raw, batch_seed, batch_ops)
        return
    for handle, labels in ordered_map(_worker_transform, tasks, int(num_workers), initializer=_init_worker,
                                      initargs=(transform_ops, batch_ops), in_flight_per_worker=2):
        yield _from_shared(handle), labels
