"""`prepare_dataset`: checked Parquet shards + manifest from ImageNet-layout sources with awkward files."""

from __future__ import annotations

import io
import json
import os

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ppipe import storage
from ppipe.data import DatasetError, iter_batches, load_manifest, prepare_dataset, verify_prepared
from ppipe.data import prepare as prepare_mod
from ppipe.data import shards as shards_mod

UNICODE_NAME = "ñandú_été_鳥.jpg"
RED, BLUE = (255, 0, 0), (0, 0, 255)


def _save(path, img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    data = buf.getvalue()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return data


def _noise(h: int, w: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _exif_rotated_jpeg() -> Image.Image:
    """20 wide x 10 high, left half red, right half blue, tagged orientation 6 (display rotated 90 deg CW)."""
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = RED
    arr[:, 10:] = BLUE
    return Image.fromarray(arr)


def make_awkward_source(root) -> dict[str, bytes]:
    """The test layout; returns the original bytes of some files."""
    root = str(root)
    t1, t2 = os.path.join(root, "train", "n01"), os.path.join(root, "train", "n02")
    orig = {}
    orig["train/n01/a.jpg"] = _save(f"{t1}/a.jpg", _noise(24, 32, 1), "JPEG")
    orig["train/n01/b.JPEG"] = _save(f"{t1}/b.JPEG", _noise(30, 20, 2), "JPEG")
    orig["train/n01/cmyk.jpg"] = _save(f"{t1}/cmyk.jpg", _noise(16, 16, 3).convert("CMYK"), "JPEG")
    orig["train/n01/gray.jpg"] = _save(f"{t1}/gray.jpg", _noise(16, 16, 4).convert("L"), "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6
    orig["train/n01/exif.jpg"] = _save(f"{t1}/exif.jpg", _exif_rotated_jpeg(), "JPEG", exif=exif.tobytes(),
                                       quality=95)
    with open(f"{t1}/notes.txt", "w") as f:
        f.write("not an image")
    orig["train/n02/pal.png"] = _save(f"{t2}/pal.png", _noise(12, 12, 5).convert("P"), "PNG")
    rgba = _noise(12, 12, 6).convert("RGBA")
    rgba.putalpha(128)
    orig["train/n02/rgba.png"] = _save(f"{t2}/rgba.png", rgba, "PNG")
    orig["train/n02/png_named.JPEG"] = _save(f"{t2}/png_named.JPEG", _noise(10, 14, 7), "PNG")
    full = _save(f"{t2}/trunc.jpg", _noise(64, 64, 8), "JPEG")
    with open(f"{t2}/trunc.jpg", "wb") as f:
        f.write(full[: len(full) // 2])
    open(f"{t2}/empty.jpg", "wb").close()
    with open(f"{t2}/corrupt.jpg", "wb") as f:
        f.write(np.random.default_rng(9).bytes(700))
    orig[f"train/n02/{UNICODE_NAME}"] = _save(f"{t2}/{UNICODE_NAME}", _noise(8, 8, 10), "JPEG")
    orig["val/n01/v1.jpg"] = _save(os.path.join(root, "val", "n01", "v1.jpg"), _noise(9, 9, 11), "JPEG")
    orig["val/n02/v2.png"] = _save(os.path.join(root, "val", "n02", "v2.png"), _noise(9, 9, 12), "PNG")
    with open(os.path.join(root, "README.txt"), "w") as f:
        f.write("stray")
    return orig


EXPECTED_REJECTED = [
    {"path": "train/n02/corrupt.jpg", "reason": "not a recognized image format (corrupt or not an image)"},
    {"path": "train/n02/empty.jpg", "reason": "empty file"},
    {"path": "train/n02/trunc.jpg", "reason": "truncated JPEG"},
]
EXPECTED_LABELS = {
    "train": {"train/n01/a.jpg": 0, "train/n01/b.JPEG": 0, "train/n01/cmyk.jpg": 0, "train/n01/gray.jpg": 0,
              "train/n01/exif.jpg": 0, "train/n02/pal.png": 1, "train/n02/rgba.png": 1,
              "train/n02/png_named.JPEG": 1, f"train/n02/{UNICODE_NAME}": 1},
    "val": {"val/n01/v1.jpg": 0, "val/n02/v2.png": 1},
}


def read_rows(out, split) -> dict[str, tuple[bytes, int]]:
    m = load_manifest(str(out))
    rows = {}
    for shard in m["splits"][split]["shards"]:
        table = pq.read_table(os.path.join(str(out), shard["path"]))
        assert table.schema.field("image").type == "binary"
        assert str(table.schema.field("label").type) == "int32"
        assert str(table.schema.field("path").type) == "string"
        for img, lab, path in zip(*(table.column(c).to_pylist() for c in ("image", "label", "path"))):
            rows[path] = (img, lab)
    return rows


@pytest.fixture
def awkward(tmp_path):
    src = tmp_path / "src"
    orig = make_awkward_source(src)
    return src, orig


def test_prepare_awkward_source_exact_summary(awkward, tmp_path):
    src, _ = awkward
    summary = prepare_dataset(str(src), str(tmp_path / "out"), shard_size=4, num_workers=0, progress=False)
    assert summary == {"num_classes": 2, "classes": ["n01", "n02"],
                       "splits": {"train": {"num_images": 9}, "val": {"num_images": 2}},
                       "rejected": EXPECTED_REJECTED}
    json.dumps(summary)


def test_prepare_stores_exact_labels_and_every_image_decodes_as_rgb(awkward, tmp_path):
    src, _ = awkward
    out = tmp_path / "out"
    prepare_dataset(str(src), str(out), shard_size=4, num_workers=0, progress=False)
    for split in ("train", "val"):
        rows = read_rows(out, split)
        assert {p: lab for p, (_, lab) in rows.items()} == EXPECTED_LABELS[split]
        for path, (img, _) in rows.items():
            with Image.open(io.BytesIO(img)) as im:
                im.load()
                assert im.mode == "RGB", path
                assert im.format in ("JPEG", "PNG"), path
            assert cv2.imdecode(np.frombuffer(img, np.uint8), 1).shape[2] == 3


def test_prepare_keeps_rgb_files_byte_for_byte_and_reencodes_only_conversions(awkward, tmp_path):
    src, orig = awkward
    out = tmp_path / "out"
    prepare_dataset(str(src), str(out), shard_size=4, num_workers=0, progress=False)
    rows = {**read_rows(out, "train"), **read_rows(out, "val")}
    kept = {"train/n01/a.jpg", "train/n01/b.JPEG", "train/n02/png_named.JPEG", f"train/n02/{UNICODE_NAME}",
            "val/n01/v1.jpg", "val/n02/v2.png"}
    converted = {"train/n01/cmyk.jpg", "train/n01/gray.jpg", "train/n01/exif.jpg", "train/n02/pal.png",
                 "train/n02/rgba.png"}
    for p in kept:
        assert rows[p][0] == orig[p], p
    for p in converted:
        assert rows[p][0] != orig[p], p
    m = load_manifest(str(out))
    assert m["splits"]["train"]["reencoded"] == 5 and m["splits"]["val"]["reencoded"] == 0
    # a palette PNG stays lossless: same RGB pixels as Pillow's conversion of the original
    with Image.open(io.BytesIO(orig["train/n02/pal.png"])) as a, Image.open(io.BytesIO(rows["train/n02/pal.png"][0])) as b:
        np.testing.assert_array_equal(np.asarray(a.convert("RGB")), np.asarray(b))


def test_prepare_applies_exif_orientation(awkward, tmp_path):
    src, _ = awkward
    out = tmp_path / "out"
    prepare_dataset(str(src), str(out), shard_size=4, num_workers=0, progress=False)
    img = np.asarray(Image.open(io.BytesIO(read_rows(out, "train")["train/n01/exif.jpg"][0])))
    assert img.shape == (20, 10, 3)  # was 20 wide x 10 high; rotated 90 degrees clockwise
    assert img[3, 5].tolist()[0] > 200 and img[3, 5].tolist()[2] < 60  # top half red (was the left half)
    assert img[16, 5].tolist()[2] > 200 and img[16, 5].tolist()[0] < 60  # bottom half blue


def test_prepare_writes_manifest_with_shard_checksums_and_row_counts(awkward, tmp_path):
    src, _ = awkward
    out = tmp_path / "out"
    prepare_dataset(str(src), str(out), shard_size=4, num_workers=0, progress=False)
    m = load_manifest(str(out))
    assert m["format"] == "ppipe.imagefolder.parquet" and m["format_version"] == 1
    assert m["source"] == str(src) and m["classes"] == ["n01", "n02"] and m["num_classes"] == 2
    assert [s["num_rows"] for s in m["splits"]["train"]["shards"]] == [4, 4, 1]
    assert [s["path"] for s in m["splits"]["train"]["shards"]] == [
        "train/part-00000.parquet", "train/part-00001.parquet", "train/part-00002.parquet"]
    assert [s["num_rows"] for s in m["splits"]["val"]["shards"]] == [2]
    for split in ("train", "val"):
        for s in m["splits"][split]["shards"]:
            with open(out / s["path"], "rb") as f:
                data = f.read()
            assert storage.sha256_bytes(data) == s["sha256"] and len(data) == s["size"]
    assert m["rejected"] == EXPECTED_REJECTED
    assert sorted(os.listdir(out)) == ["manifest.json", "train", "val"]
    assert sorted(os.listdir(out / "train")) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]


def test_verify_prepared_detects_a_changed_shard(awkward, tmp_path):
    src, _ = awkward
    out = tmp_path / "out"
    prepare_dataset(str(src), str(out), shard_size=4, num_workers=0, progress=False)
    assert verify_prepared(str(out))["num_classes"] == 2
    shard = out / "train" / "part-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:-1] + b"x")
    with pytest.raises(DatasetError, match="shard 'train/part-00001.parquet' does not match its sha256"):
        verify_prepared(str(out))


def test_rerun_over_a_larger_previous_output_removes_stale_shards(awkward, tmp_path):
    src, _ = awkward
    out = tmp_path / "out"
    prepare_dataset(str(src), str(out), shard_size=2, num_workers=0, progress=False)
    assert len(os.listdir(out / "train")) == 5
    prepare_dataset(str(src), str(out), shard_size=4, num_workers=0, progress=False)
    assert sorted(os.listdir(out / "train")) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    verify_prepared(str(out))


def test_prepare_with_two_worker_processes_writes_identical_shards(awkward, tmp_path):
    src, _ = awkward
    prepare_dataset(str(src), str(tmp_path / "a"), shard_size=4, num_workers=0, progress=False)
    summary = prepare_dataset(str(src), str(tmp_path / "b"), shard_size=4, num_workers=2, progress=False)
    assert summary["rejected"] == EXPECTED_REJECTED
    ma, mb = load_manifest(str(tmp_path / "a")), load_manifest(str(tmp_path / "b"))
    assert ma["splits"] == mb["splits"]


def test_progress_bar_goes_to_stderr(awkward, tmp_path, capsys, monkeypatch):
    import sys

    src, _ = awkward
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: the bar (a log gets lines, see test_console)
    prepare_dataset(str(src), str(tmp_path / "out"), num_workers=0, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "14/14" in captured.err  # 14 image files by extension (the .txt files are not counted)


def test_mapping_file_sets_class_order_and_names(tmp_path):
    src = tmp_path / "src"
    _save(str(src / "train" / "n01" / "x.jpg"), _noise(8, 8, 1), "JPEG")
    _save(str(src / "train" / "n02" / "y.jpg"), _noise(8, 8, 2), "JPEG")
    (src / "LOC_synset_mapping.txt").write_text("n02 second thing\nn01 first thing\nn03 unused\n")
    out = tmp_path / "out"
    summary = prepare_dataset(str(src), str(out), num_workers=0, progress=False)
    assert summary == {"num_classes": 3, "classes": ["n02", "n01", "n03"],
                       "splits": {"train": {"num_images": 2}}, "rejected": []}
    assert {p: lab for p, (_, lab) in read_rows(out, "train").items()} == {"train/n01/x.jpg": 1,
                                                                           "train/n02/y.jpg": 0}
    assert load_manifest(str(out))["class_names"] == ["second thing", "first thing", "unused"]


def test_flat_val_with_kaggle_solution_csv(tmp_path):
    src = tmp_path / "src"
    _save(str(src / "train" / "n01" / "x.JPEG"), _noise(8, 8, 1), "JPEG")
    _save(str(src / "train" / "n02" / "y.JPEG"), _noise(8, 8, 2), "JPEG")
    _save(str(src / "val" / "ILSVRC2012_val_00000001.JPEG"), _noise(8, 8, 3), "JPEG")
    _save(str(src / "val" / "ILSVRC2012_val_00000002.JPEG"), _noise(8, 8, 4), "JPEG")
    (src / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000002,n01 1 2 3 4 n01 5 6 7 8\n"
        "ILSVRC2012_val_00000001,n02 1 2 3 4\n")
    out = tmp_path / "out"
    summary = prepare_dataset(str(src), str(out), num_workers=0, progress=False)
    assert summary["splits"] == {"train": {"num_images": 2}, "val": {"num_images": 2}}
    assert {p: lab for p, (_, lab) in read_rows(out, "val").items()} == {
        "val/ILSVRC2012_val_00000001.JPEG": 1, "val/ILSVRC2012_val_00000002.JPEG": 0}


def test_flat_val_with_val_list_and_paddleclas_list_files(tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        _save(str(src / "jpg" / f"img_{i}.jpg"), _noise(8, 8, i), "JPEG")
    (src / "train_list.txt").write_text("jpg/img_0.jpg 0\njpg/img_1.jpg 2\njpg/missing.jpg 1\n")
    (src / "val_list.txt").write_text("jpg/img_2.jpg 1\n")
    out = tmp_path / "out"
    summary = prepare_dataset(str(src), str(out), num_workers=0, progress=False)
    assert summary == {"num_classes": 3, "classes": ["0", "1", "2"],
                       "splits": {"train": {"num_images": 2}, "val": {"num_images": 1}},
                       "rejected": [{"path": "jpg/missing.jpg", "reason": "file not found"}]}
    assert {p: lab for p, (_, lab) in read_rows(out, "train").items()} == {"jpg/img_0.jpg": 0, "jpg/img_1.jpg": 2}


def test_failure_mid_way_leaves_no_manifest_even_over_a_previous_run(awkward, tmp_path, monkeypatch):
    src, _ = awkward
    out = tmp_path / "out"
    prepare_dataset(str(src), str(out), shard_size=4, num_workers=0, progress=False)
    assert (out / "manifest.json").exists()
    calls = []
    real = shards_mod.write_shard

    def failing(url, data):
        calls.append(url)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        real(url, data)

    monkeypatch.setattr(shards_mod, "write_shard", failing)
    with pytest.raises(OSError, match="simulated"):
        # a different shard size changes the output, so this run really rewrites the dataset
        prepare_dataset(str(src), str(out), shard_size=3, num_workers=0, progress=False)
    assert len(calls) == 2
    assert not (out / "manifest.json").exists()
    with pytest.raises(DatasetError, match="has no manifest.json: not a prepared dataset or preparation did not finish"):
        load_manifest(str(out))
    with pytest.raises(DatasetError, match="has no manifest.json"):
        next(iter_batches(str(out), "train", [{"ToCHWImage": None}], 2))


def test_missing_source_is_an_error_naming_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as e:
        prepare_dataset(str(missing), str(tmp_path / "out"), progress=False)
    assert str(missing) in str(e.value) and "does not exist" in str(e.value)
    assert "train/<class>/<image>" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_empty_source_is_an_error_naming_the_path(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError) as e:
        prepare_dataset(str(empty), str(tmp_path / "out"), progress=False)
    assert str(empty) in str(e.value) and "no train/ or val/ folder" in str(e.value)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_split_folders_without_class_folders_are_an_error(tmp_path):
    src = tmp_path / "src"
    (src / "train").mkdir(parents=True)
    (src / "val").mkdir()
    with pytest.raises(DatasetError) as e:
        prepare_dataset(str(src), str(tmp_path / "out"), progress=False)
    assert str(src) in str(e.value) and "train/ has no class folders and no images" in str(e.value)


def test_class_folders_without_images_are_an_error(tmp_path):
    src = tmp_path / "src"
    (src / "train" / "n01").mkdir(parents=True)
    (src / "train" / "n01" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError) as e:
        prepare_dataset(str(src), str(tmp_path / "out"), progress=False)
    assert str(src) in str(e.value) and "contains no image files" in str(e.value)


def test_flat_split_without_labels_is_an_error(tmp_path):
    src = tmp_path / "src"
    _save(str(src / "train" / "x.jpg"), _noise(8, 8, 1), "JPEG")
    with pytest.raises(DatasetError, match="no LOC_val_solution.csv or train_list.txt"):
        prepare_dataset(str(src), str(tmp_path / "out"), progress=False)


def test_prepare_s3_to_s3_and_read_back_through_iter_batches(awkward, s3_bucket):
    import s3fs

    src, _ = awkward
    fs = s3fs.S3FileSystem()
    fs.put(str(src), f"{s3_bucket}/raw", recursive=True)
    out = f"{s3_bucket}/prepared/awkward"
    summary = prepare_dataset(f"{s3_bucket}/raw", out, shard_size=4, num_workers=2, progress=False)
    assert summary == {"num_classes": 2, "classes": ["n01", "n02"],
                       "splits": {"train": {"num_images": 9}, "val": {"num_images": 2}},
                       "rejected": EXPECTED_REJECTED}
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(out)) == ["manifest.json", "train", "val"]
    ops = [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, {"ResizeImage": {"size": 16}},
           {"NormalizeImage": {"scale": 1.0 / 255.0, "mean": [0.5] * 3, "std": [0.5] * 3, "order": ""}},
           {"ToCHWImage": None}]
    batches = list(iter_batches(out, "train", ops, 4, shuffle=False, pad=False))
    assert [b[0].shape for b in batches] == [(4, 3, 16, 16), (4, 3, 16, 16), (1, 3, 16, 16)]
    labels = np.concatenate([b[1] for b in batches])
    assert labels.dtype == np.int64 and sorted(labels.tolist()) == [0] * 5 + [1] * 4


def _count_checks(monkeypatch):
    checked = []
    real = prepare_mod.check_image

    def counting(data):
        checked.append(len(data))
        return real(data)

    monkeypatch.setattr(prepare_mod, "check_image", counting)
    return checked


def test_rerun_on_an_unchanged_source_does_nothing(awkward, tmp_path, monkeypatch):
    src, _ = awkward
    out = tmp_path / "out"
    first = prepare_dataset(str(src), str(out), shard_size=4, num_workers=0, progress=False)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    checked = _count_checks(monkeypatch)
    again = prepare_dataset(str(src), str(out), shard_size=4, num_workers=0, progress=False)
    assert again == first
    assert checked == []  # no image was decoded again
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before


def test_changed_source_is_prepared_again(awkward, tmp_path, monkeypatch):
    src, _ = awkward
    out = tmp_path / "out"
    first = prepare_dataset(str(src), str(out), shard_size=4, num_workers=0, progress=False)
    extra = next((src / "train").iterdir())
    img = next(p for p in extra.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    (extra / ("copy" + img.suffix)).write_bytes(img.read_bytes())
    again = prepare_dataset(str(src), str(out), shard_size=4, num_workers=0, progress=False)
    assert again["splits"]["train"]["num_images"] == first["splits"]["train"]["num_images"] + 1


def test_interrupted_run_resumes_after_the_shards_already_written(awkward, tmp_path, monkeypatch):
    src, _ = awkward
    out = tmp_path / "out"
    reference = prepare_dataset(str(src), str(tmp_path / "reference"), shard_size=2, num_workers=0,
                                progress=False)
    writes = []
    real = shards_mod.write_shard

    def failing(url, data):
        if len(writes) == 2:
            raise KeyboardInterrupt  # the run is stopped after two shards
        writes.append(url)
        real(url, data)

    monkeypatch.setattr(shards_mod, "write_shard", failing)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(str(src), str(out), shard_size=2, num_workers=0, progress=False)
    assert not (out / "manifest.json").exists() and len(writes) == 2
    monkeypatch.setattr(shards_mod, "write_shard", real)
    checked = _count_checks(monkeypatch)
    resumed = prepare_dataset(str(src), str(out), shard_size=2, num_workers=0, progress=False)
    assert resumed == reference
    total = sum(v["num_images"] for v in reference["splits"].values()) + len(reference["rejected"])
    assert len(checked) < total  # the two finished shards' images were not decoded again
    ref_manifest, manifest = load_manifest(str(tmp_path / "reference")), load_manifest(str(out))
    assert [s["sha256"] for s in manifest["splits"]["train"]["shards"]] == \
        [s["sha256"] for s in ref_manifest["splits"]["train"]["shards"]]
    assert not (out / ".progress").exists()


def test_ray_tasks_prepare_the_same_dataset(awkward, tmp_path, local_ray):
    src, _ = awkward
    a = prepare_dataset(str(src), str(tmp_path / "a"), shard_size=4, num_workers=0, progress=False)
    b = prepare_dataset(str(src), str(tmp_path / "b"), shard_size=4, progress=False, executor="ray")
    assert a == b
    assert [s["sha256"] for s in load_manifest(str(tmp_path / "a"))["splits"]["train"]["shards"]] == \
        [s["sha256"] for s in load_manifest(str(tmp_path / "b"))["splits"]["train"]["shards"]]
