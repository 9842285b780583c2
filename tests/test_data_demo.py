"""`write_digits_demo`: scikit-learn's digits as a fixed, stratified ImageNet-layout folder."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
from PIL import Image

from ppipe.data import prepare_dataset, write_digits_demo


def _listing(root) -> dict[str, list[str]]:
    out = {}
    for split in ("train", "val"):
        out[split] = sorted(f"{c}/{f}" for c in os.listdir(os.path.join(root, split))
                            for f in os.listdir(os.path.join(root, split, c)))
    return out


def test_demo_writes_1797_images_with_exact_stable_split(tmp_path):
    a = write_digits_demo(str(tmp_path / "a"))
    assert a == {"out": str(tmp_path / "a"), "num_classes": 10, "image_size": 32,
                 "splits": {"train": {"num_images": 1437}, "val": {"num_images": 360}}}
    files = _listing(tmp_path / "a")
    assert len(files["train"]) == 1437 and len(files["val"]) == 360
    assert not set(f.split("/")[1] for f in files["train"]) & set(f.split("/")[1] for f in files["val"])
    assert sorted(os.listdir(tmp_path / "a" / "train")) == [str(d) for d in range(10)]
    # stratified: every class keeps 20 % of its images in val
    assert Counter(f.split("/")[0] for f in files["val"]) == {
        "0": 36, "1": 36, "2": 35, "3": 37, "4": 36, "5": 37, "6": 36, "7": 36, "8": 35, "9": 36}
    write_digits_demo(str(tmp_path / "b"))
    assert _listing(tmp_path / "b") == files


def test_demo_images_are_rgb_pngs_of_the_requested_size_and_mapping_file(tmp_path):
    write_digits_demo(str(tmp_path / "d"), image_size=40)
    path = tmp_path / "d" / "train" / "0" / "0000.png"  # load_digits()[0] is a zero in the training split
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (40, 40)
        arr = np.asarray(im)
    assert arr.max() > 200 and arr.min() < 30  # real strokes on a dark background
    lines = (tmp_path / "d" / "LOC_synset_mapping.txt").read_text().splitlines()
    assert lines[:3] == ["0 zero", "1 one", "2 two"] and len(lines) == 10


def test_demo_output_prepares_without_rejections(tmp_path):
    write_digits_demo(str(tmp_path / "src"))
    summary = prepare_dataset(str(tmp_path / "src"), str(tmp_path / "out"), num_workers=0, progress=False)
    assert summary == {"num_classes": 10, "classes": [str(d) for d in range(10)],
                       "splits": {"train": {"num_images": 1437}, "val": {"num_images": 360}}, "rejected": []}


def test_demo_writes_to_an_fsspec_url(tmp_path):
    summary = write_digits_demo(f"file://{tmp_path}/u", image_size=8)
    assert summary["splits"]["train"]["num_images"] == 1437
    assert len(_listing(tmp_path / "u")["val"]) == 360
