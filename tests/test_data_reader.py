"""The per-rank input pipeline: disjoint/padded rank parts, per-epoch order, batches, and refusal of
incomplete datasets."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from ppipe.data import (DatasetError, iter_batches, iter_samples, load_manifest, num_batches, num_samples,
                        prepare_dataset, split_size)
from ppipe.data import reader as reader_mod
from ppipe.data.reader import class_names, epoch_plan

N = 23  # 3 classes, shard_size 5 -> shards of 5, 5, 5, 5, 3 rows
OPS = [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, {"RandCropImage": {"size": 6}},
       {"RandFlipImage": {"flip_code": 1}},
       {"NormalizeImage": {"scale": 1.0 / 255.0, "mean": [0.5] * 3, "std": [0.5] * 3, "order": ""}},
       {"ToCHWImage": None}]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("reader")
    src = root / "src"
    for i in range(N):
        cls = f"c{i % 3}"
        os.makedirs(src / "train" / cls, exist_ok=True)
        arr = np.full((8, 8, 3), i * 10, np.uint8)  # every image differs: its bytes identify the sample
        Image.fromarray(arr).save(src / "train" / cls / f"{i:02d}.png")
    os.makedirs(src / "val" / "c0")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / "val" / "c0" / "v.png")
    out = root / "prepared"
    prepare_dataset(str(src), str(out), shard_size=5, num_workers=0, progress=False)
    return str(out)


def _all_train(prepared) -> Counter:
    return Counter(iter_samples(prepared, "train", shuffle=False, pad=False))


def test_fixture_layout(prepared):
    m = load_manifest(prepared)
    assert [s["num_rows"] for s in m["splits"]["train"]["shards"]] == [5, 5, 5, 5, 3]
    assert split_size(prepared, "train") == 23 and split_size(prepared, "val") == 1
    assert class_names(prepared) == ["c0", "c1", "c2"]


def test_unshuffled_single_rank_reads_every_sample_once_in_stored_order(prepared):
    samples = list(iter_samples(prepared, "train", shuffle=False, pad=False))
    assert len(samples) == 23 and len(set(samples)) == 23
    assert Counter(lab for _, lab in samples) == {0: 8, 1: 8, 2: 7}
    import pyarrow.parquet as pq

    stored = []
    for s in load_manifest(prepared)["splits"]["train"]["shards"]:
        t = pq.read_table(os.path.join(prepared, s["path"]))
        stored += list(zip(t.column("image").to_pylist(), t.column("label").to_pylist()))
    assert samples == stored


@pytest.mark.parametrize("world_size,sizes", [(2, [11, 12]), (3, [7, 8, 8]), (4, [5, 6, 6, 6])])
def test_ranks_are_disjoint_without_padding_and_their_union_is_the_split(prepared, world_size, sizes):
    everything = _all_train(prepared)
    parts = [list(iter_samples(prepared, "train", rank=r, world_size=world_size, epoch=2, pad=False))
             for r in range(world_size)]
    assert [len(p) for p in parts] == sizes
    assert [num_samples(prepared, "train", rank=r, world_size=world_size, pad=False)
            for r in range(world_size)] == sizes
    union = Counter()
    for p in parts:
        union.update(p)
    assert union == everything  # each sample exactly once


@pytest.mark.parametrize("world_size,per_rank", [(2, 12), (3, 8), (5, 5)])
def test_padding_gives_every_rank_the_same_count_and_covers_the_split(prepared, world_size, per_rank):
    everything = _all_train(prepared)
    parts = [list(iter_samples(prepared, "train", rank=r, world_size=world_size, epoch=1))
             for r in range(world_size)]
    assert [len(p) for p in parts] == [per_rank] * world_size
    union = Counter()
    for p in parts:
        union.update(p)
    assert set(union) == set(everything)
    assert sum(union.values()) == per_rank * world_size
    assert sum(c - 1 for c in union.values()) == per_rank * world_size - 23  # only the padding repeats


def test_padding_more_ranks_than_samples(prepared):
    parts = [list(iter_samples(prepared, "val", rank=r, world_size=3)) for r in range(3)]
    assert [len(p) for p in parts] == [1, 1, 1] and parts[0] == parts[1] == parts[2]


def test_order_differs_per_epoch_and_repeats_for_same_seed_and_epoch(prepared):
    e0 = list(iter_samples(prepared, "train", epoch=0, seed=7))
    e0_again = list(iter_samples(prepared, "train", epoch=0, seed=7))
    e1 = list(iter_samples(prepared, "train", epoch=1, seed=7))
    other_seed = list(iter_samples(prepared, "train", epoch=0, seed=8))
    assert e0 == e0_again
    assert e0 != e1 and Counter(e0) == Counter(e1)
    assert e0 != other_seed
    assert e0 != list(iter_samples(prepared, "train", shuffle=False))


def test_shuffle_mixes_shards_and_changes_shard_order_per_epoch(prepared):
    m = load_manifest(prepared)
    s0, _ = epoch_plan(m, "train", epoch=0, seed=0)
    s1, _ = epoch_plan(m, "train", epoch=1, seed=0)
    assert sorted(Counter(s0.tolist()).items()) == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 3)]
    assert len(set(s0[:5].tolist())) > 1  # the first five samples come from several shards
    assert s0.tolist() != s1.tolist()


def test_a_rank_reads_only_the_shards_its_part_needs(prepared, monkeypatch):
    opened = []
    real = reader_mod._read_rows

    def spy(prep, shard, rows):
        opened.append((shard["path"], len(rows)))
        return real(prep, shard, rows)

    monkeypatch.setattr(reader_mod, "_read_rows", spy)
    assert len(list(iter_samples(prepared, "train", rank=0, world_size=4, shuffle=False, pad=False))) == 5
    assert opened == [("train/part-00000.parquet", 5)]
    opened.clear()
    list(iter_samples(prepared, "train", rank=2, world_size=4, epoch=3, pad=False))
    assert len(opened) <= 2 and sum(n for _, n in opened) == 6  # a contiguous part spans at most 2 shards


def test_iter_batches_shapes_dtypes_and_count(prepared):
    batches = list(iter_batches(prepared, "train", OPS, 4, rank=1, world_size=2, epoch=0))
    assert len(batches) == num_batches(prepared, "train", 4, rank=1, world_size=2) == 3
    assert [b[0].shape for b in batches] == [(4, 3, 6, 6), (4, 3, 6, 6), (4, 3, 6, 6)]
    assert all(x.dtype == np.float32 and y.dtype == np.int64 for x, y in batches)
    assert np.all(np.concatenate([x for x, _ in batches]) >= -1.0 - 1e-6)


def test_iter_batches_drop_last_and_no_padding_counts(prepared):
    assert len(list(iter_batches(prepared, "train", OPS, 5, drop_last=True, pad=False))) == 4
    assert num_batches(prepared, "train", 5, drop_last=True, pad=False) == 4
    sizes = [len(y) for _, y in iter_batches(prepared, "train", OPS, 5, pad=False)]
    assert sizes == [5, 5, 5, 5, 3] and num_batches(prepared, "train", 5, pad=False) == 5


def test_iter_batches_labels_match_the_samples(prepared):
    labels = np.concatenate([y for _, y in iter_batches(prepared, "train", OPS, 4, epoch=5, seed=1, pad=False)])
    assert labels.tolist() == [lab for _, lab in iter_samples(prepared, "train", epoch=5, seed=1, pad=False)]


def test_iter_batches_is_reproducible_and_same_with_worker_processes(prepared):
    a = list(iter_batches(prepared, "train", OPS, 8, epoch=3, seed=2))
    b = list(iter_batches(prepared, "train", OPS, 8, epoch=3, seed=2))
    c = list(iter_batches(prepared, "train", OPS, 8, epoch=3, seed=2, num_workers=2))
    for (xa, ya), (xb, yb), (xc, yc) in zip(a, b, c):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(xa, xc)
        np.testing.assert_array_equal(ya, yc)
    assert len(a) == len(c) == 3


def test_bad_transform_list_fails_before_reading(prepared):
    with pytest.raises(ValueError, match="unknown transform operator 'Decode'"):
        next(iter_batches(prepared, "train", [{"Decode": None}], 4))


def test_reading_a_dataset_without_manifest_fails_clearly(prepared, tmp_path):
    incomplete = tmp_path / "incomplete"
    os.makedirs(incomplete / "train")
    with open(os.path.join(prepared, "train", "part-00000.parquet"), "rb") as f:
        (incomplete / "train" / "part-00000.parquet").write_bytes(f.read())
    msg = f"'{incomplete}' has no manifest.json: not a prepared dataset or preparation did not finish"
    with pytest.raises(DatasetError, match=msg.replace(".", r"\.")):
        list(iter_samples(str(incomplete), "train"))
    with pytest.raises(DatasetError, match="has no manifest.json"):
        split_size(str(incomplete), "train")


def test_unknown_split_and_bad_rank_are_errors(prepared):
    with pytest.raises(DatasetError, match="has no split 'test'; it has: train, val"):
        list(iter_samples(prepared, "test"))
    with pytest.raises(ValueError, match="rank must be in"):
        list(iter_samples(prepared, "train", rank=2, world_size=2))


def test_missing_shard_is_reported(prepared, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    os.remove(copy / "train" / "part-00001.parquet")
    with pytest.raises(DatasetError, match="lists shard 'train/part-00001.parquet' but it is missing"):
        list(iter_samples(str(copy), "train", shuffle=False))


def _per_sample_reference(prepared, ops_list, batch_size, **kw):
    """The unfused definition: every op per sample, then HWC -> CHW as PaddleClas's ImageNetDataset does."""
    from ppipe.data import create_operators
    from ppipe.data.reader import _batch_seed, _chunks

    ops = create_operators(ops_list)
    out = []
    samples = iter_samples(prepared, "train", epoch=kw["epoch"], seed=kw["seed"], pad=False)
    for i, raw in enumerate(_chunks(samples, batch_size, False)):
        ops.reseed(_batch_seed(kw["seed"], kw["epoch"], 0, i))
        imgs = [ops(b) for b, _ in raw]
        out.append(np.stack([x if x.shape[0] == 3 else x.transpose(2, 0, 1) for x in imgs]))
    return out


@pytest.mark.parametrize("tail", [[], [{"ToCHWImage": None}]], ids=["paddleclas-style", "with-ToCHWImage"])
def test_batches_are_nchw_and_fused_normalize_equals_the_per_sample_ops(prepared, tail):
    """PaddleClas train recipes end in NormalizeImage(order='') and rely on the dataset's transpose; both
    that and an explicit ToCHWImage give NCHW, with the per-sample arithmetic."""
    ops_list = OPS[:-1] + tail
    got = [x for x, _ in iter_batches(prepared, "train", ops_list, 8, epoch=2, seed=4, pad=False)]
    want = _per_sample_reference(prepared, ops_list, 8, epoch=2, seed=4)
    assert [g.shape for g in got] == [(8, 3, 6, 6), (8, 3, 6, 6), (7, 3, 6, 6)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-6)


def test_channels_last_ops_without_normalize_are_transposed(prepared):
    ops_list = [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, {"CropImage": {"size": 4}}]
    (x, _), *_ = iter_batches(prepared, "train", ops_list, 4, shuffle=False, pad=False)
    assert x.shape == (4, 3, 4, 4) and x.dtype == np.float32
    assert x.max() <= 255 and x.min() >= 0  # raw pixel values, no normalization


def test_start_batch_resumes_an_epoch_with_the_same_batches(prepared):
    full = list(iter_batches(prepared, "train", OPS, 4, epoch=1, seed=3))
    tail = list(iter_batches(prepared, "train", OPS, 4, epoch=1, seed=3, start_batch=2))
    assert len(tail) == len(full) - 2
    for (xa, ya), (xb, yb) in zip(full[2:], tail):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
