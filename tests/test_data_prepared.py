"""PreparedDataset: a prepared dataset opened once (its manifest read once, whatever is asked of it), and
resolve_prepared: the one answer to which prepared dataset a run reads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ppipe.config import ConfigError, load_config
from ppipe.data import (DatasetError, PreparedDataset, class_names, iter_batches, iter_samples, num_batches,
                        open_prepared, prepare_dataset, resolve_prepared, split_size, verify_prepared)
from ppipe.data import prepared as prepared_mod

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
OPS = [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, {"CropImage": {"size": 4}}, {"ToCHWImage": None}]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """2 classes, 7 training images in shards of 3 rows, 1 validation image."""
    root = tmp_path_factory.mktemp("prepared")
    for i in range(7):
        os.makedirs(root / "src" / "train" / f"c{i % 2}", exist_ok=True)
        Image.fromarray(np.full((6, 6, 3), i * 30, np.uint8)).save(root / "src" / "train" / f"c{i % 2}" / f"{i}.png")
    os.makedirs(root / "src" / "val" / "c1")
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(root / "src" / "val" / "c1" / "v.png")
    prepare_dataset(str(root / "src"), str(root / "out"), shard_size=3, num_workers=0, progress=False)
    return str(root / "out")


@pytest.fixture
def manifest_reads(monkeypatch):
    """How many times a manifest is read from storage."""
    reads = []
    real = prepared_mod.load_manifest

    def counting(url):
        reads.append(url)
        return real(url)

    monkeypatch.setattr(prepared_mod, "load_manifest", counting)
    return reads


def test_an_opened_dataset_answers_from_one_manifest_read(prepared, manifest_reads):
    ds = open_prepared(prepared)
    assert ds.url == prepared and ds.classes == ["c0", "c1"] and ds.num_classes == 2
    assert ds.split_names == ["train", "val"] and ds.num_images("train") == 7 and ds.num_images("val") == 1
    assert [s["num_rows"] for s in ds.shards("train")] == [3, 3, 1]
    assert ds.num_samples("train") == 7 and ds.num_samples("train", rank=1, world_size=2) == 4
    assert ds.num_batches("train", 2, rank=1, world_size=2) == num_batches(ds, "train", 2, rank=1, world_size=2) == 2
    assert split_size(ds, "train") == 7 and class_names(ds) == ["c0", "c1"]
    assert len(list(iter_samples(ds, "train", shuffle=False))) == 7
    batches = list(iter_batches(ds, "train", OPS, 4, batch_transform_ops=[{"MixupOperator": {"alpha": 0.2}}]))
    assert [y.shape for _, y in batches] == [(4, 2), (3, 2)]  # soft targets as wide as the dataset's classes
    assert manifest_reads == [prepared]


def test_reading_batches_from_a_url_reads_its_manifest_once(prepared, manifest_reads):
    list(iter_batches(prepared, "train", OPS, 4, batch_transform_ops=[{"MixupOperator": {"alpha": 0.2}}]))
    assert manifest_reads == [prepared]


def test_opening_an_opened_dataset_returns_it(prepared):
    ds = open_prepared(Path(prepared))
    assert isinstance(ds, PreparedDataset) and open_prepared(ds) is ds and ds.url == prepared


def test_an_unknown_split_or_missing_manifest_is_a_dataset_error_naming_it(prepared, tmp_path):
    with pytest.raises(DatasetError, match=r"has no split 'test'; it has: train, val"):
        open_prepared(prepared).num_images("test")
    with pytest.raises(DatasetError, match=r"has no manifest\.json"):
        open_prepared(tmp_path)


def test_verify_finds_a_changed_shard(prepared, tmp_path):
    import shutil

    assert verify_prepared(prepared)["num_classes"] == 2
    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    (copy / "train" / "part-00001.parquet").write_bytes(b"not the shard")
    with pytest.raises(DatasetError, match=r"shard 'train/part-00001\.parquet' does not match its sha256"):
        open_prepared(copy).verify()


def test_resolve_prepared_takes_the_override_then_the_dataset_path_then_data_prepared(tmp_path):
    cfg = load_config(QUICKSTART, ["Data.prepared=s3://bucket/digits"])
    assert resolve_prepared(cfg) == "s3://bucket/digits"
    assert resolve_prepared(cfg, "s3://bucket/other") == "s3://bucket/other"
    cfg = load_config(QUICKSTART, [f"DataLoader.Train.dataset.path={tmp_path}/a", "Data.prepared=b"])
    assert resolve_prepared(cfg) == f"{tmp_path}/a"


def test_resolve_prepared_makes_a_local_path_absolute_and_reads_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(QUICKSTART, ["Data.prepared=not-prepared-yet"])
    assert resolve_prepared(cfg) == str(tmp_path / "not-prepared-yet")


def test_resolve_prepared_without_a_location_is_a_config_error_naming_the_ways_to_give_one():
    cfg = load_config(QUICKSTART, ["Data.prepared=null"])
    with pytest.raises(ConfigError, match=r"--data PREPARED.*DataLoader\.Train\.dataset\.path.*Data\.prepared"):
        resolve_prepared(cfg)
    cfg = load_config(QUICKSTART, ["Data.prepared=null", "DataLoader.Train.dataset.name=ImageNetDataset"])
    with pytest.raises(ConfigError, match=r"ImageNetDataset .* must be prepared into shards first"):
        resolve_prepared(cfg)
