"""Which samples of a split each rank reads in an epoch, and in which order. Pure: reads nothing.

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
from typing import Sequence

import numpy as np

__all__ = ["DEFAULT_SHUFFLE_BUFFER", "check_rank", "epoch_order", "rank_bounds", "rank_share"]

DEFAULT_SHUFFLE_BUFFER = 2048  # samples held in memory per rank for the within-part shuffle


def check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size) with world_size >= 1, got rank={rank}, "
                         f"world_size={world_size}")


def rank_bounds(n: int, rank: int, world_size: int, pad: bool) -> tuple[int, int, int]:
    """(start, end, padded length) of rank's slice of the (padded) global sequence of n samples."""
    if pad:
        per = math.ceil(n / world_size) if n else 0
        return rank * per, (rank + 1) * per, per * world_size
    return rank * n // world_size, (rank + 1) * n // world_size, n


def rank_share(n: int, *, rank: int = 0, world_size: int = 1, pad: bool = True) -> int:
    """How many of a split's n samples `rank` reads in any epoch."""
    check_rank(rank, world_size)
    start, end, _ = rank_bounds(n, rank, world_size, pad)
    return end - start


def epoch_order(shard_rows: Sequence[int], *, rank: int = 0, world_size: int = 1, epoch: int = 0,
                shuffle: bool = True, seed: int = 0, pad: bool = True,
                shuffle_buffer: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(shard index, row index) of every sample `rank` reads this epoch, in order, for shards holding
    `shard_rows` rows each."""
    check_rank(rank, world_size)
    rows = np.asarray(shard_rows, dtype=np.int64)
    n = int(rows.sum())
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rng = np.random.default_rng([int(seed), int(epoch)]) if shuffle else None
    shard_order = rng.permutation(len(rows)) if shuffle else np.arange(len(rows))
    shard_ids = np.repeat(shard_order, rows[shard_order])
    row_ids = np.concatenate([rng.permutation(rows[s]) if shuffle else np.arange(rows[s]) for s in shard_order])
    start, end, total = rank_bounds(n, rank, world_size, pad)
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
