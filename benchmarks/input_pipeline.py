"""Train-transform throughput: ppipe's input pipeline against PaddleClas's own loader, in the same run.

Both sides read the same JPEG files (500x375, made from scikit-learn's sample photographs), apply
ResNet50_vd's train transforms at 224 (DecodeImage, RandCropImage 224, RandFlipImage, NormalizeImage) and
yield batches of float32 images:

* baseline: PaddleClas's `ImageNetDataset` (list file + image folder) in a `paddle.io.DataLoader` with
  `num_workers` worker processes and shared memory, as PaddleClas's `tools/train.py` builds it;
* ppipe: the same images prepared into Parquet shards (`ppipe data prepare`, timed separately on one
  core: `prepare_img_per_s_per_core`), read with `ppipe.data.iter_batches(..., num_workers=...)`.

`--workers 0` compares both pipelines in one process (one core each); `--workers N` with N loader processes.

Rounds alternate A and B so that other load on the machine affects both; the ratio of the medians is what
to compare. PaddleClas's data loader lives only in its source repository, so the baseline needs a PaddleClas
source tree (`--paddleclas-src`, the folder holding `ppcls/`; never part of this project).

    python benchmarks/input_pipeline.py --paddleclas-src ../PaddleClas [--images 512] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

TRAIN_OPS = [
    {"DecodeImage": {"to_rgb": True, "channel_first": False}},
    {"RandCropImage": {"size": 224}},
    {"RandFlipImage": {"flip_code": 1}},
    {"NormalizeImage": {"scale": 1.0 / 255.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                        "order": ""}},
]


def make_jpegs(root: str, n: int, classes: int = 10, size=(500, 375), seed: int = 0) -> str:
    """n distinct photographic JPEGs in ImageNet layout plus a PaddleClas `train_list.txt`."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(a) for a in load_sample_images().images]
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        base = photos[i % len(photos)]
        w, h = base.size
        cw, ch = int(rng.integers(w // 2, w + 1)), int(rng.integers(h // 2, h + 1))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        im = base.crop((x0, y0, x0 + cw, y0 + ch)).resize(size)
        rel = f"train/n{i % classes:08d}/{i:06d}.JPEG"
        os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
        im.save(os.path.join(root, rel), quality=90)
        lines.append(f"{rel} {i % classes}")
    with open(os.path.join(root, "train_list.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return root


def run_paddleclas(src_root: str, batch_size: int, workers: int) -> float:
    import paddle
    from ppcls.data.dataloader.imagenet_dataset import ImageNetDataset

    dataset = ImageNetDataset(image_root=src_root, cls_label_path=os.path.join(src_root, "train_list.txt"),
                              transform_ops=TRAIN_OPS)
    loader = paddle.io.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=False,
                                  num_workers=workers, use_shared_memory=True, return_list=True)
    n, start = 0, time.perf_counter()
    for images, _labels in loader:
        n += images.shape[0]
    return n / (time.perf_counter() - start)


def run_ppipe(prepared: str, batch_size: int, workers: int, epoch: int) -> float:
    from ppipe.data import iter_batches

    n, start = 0, time.perf_counter()
    for images, _labels in iter_batches(prepared, "train", TRAIN_OPS, batch_size, epoch=epoch,
                                        num_workers=workers, pad=False):
        n += images.shape[0]
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paddleclas-src", help="a PaddleClas source tree (the folder holding ppcls/)")
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=1, help="loader worker processes on each side")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    from ppipe.data import prepare_dataset

    with tempfile.TemporaryDirectory(prefix="ppipe-bench-") as tmp:
        src = make_jpegs(os.path.join(tmp, "src"), args.images)
        prepared = os.path.join(tmp, "prepared")
        start = time.perf_counter()
        prepare_dataset(src, prepared, progress=False, num_workers=0)  # one core: the per-core figure
        prepare_per_core = args.images / (time.perf_counter() - start)
        have_baseline = bool(args.paddleclas_src)
        if have_baseline:
            sys.path.insert(0, os.path.abspath(args.paddleclas_src))
        ours, theirs = [], []
        for r in range(args.rounds + 1):  # round 0 warms caches and imports on both sides
            o = run_ppipe(prepared, args.batch_size, args.workers, epoch=r)
            t = run_paddleclas(src, args.batch_size, args.workers) if have_baseline else None
            if r:
                ours.append(o)
                if t is not None:
                    theirs.append(t)
        result = {
            "images": args.images, "batch_size": args.batch_size, "workers": args.workers, "rounds": args.rounds,
            "ppipe_img_per_s": statistics.median(ours),
            "ppipe_img_per_s_per_worker": statistics.median(ours) / max(1, args.workers),
            "prepare_img_per_s_per_core": prepare_per_core,
        }
        if theirs:
            result["paddleclas_img_per_s"] = statistics.median(theirs)
            result["ratio"] = result["ppipe_img_per_s"] / result["paddleclas_img_per_s"]
        else:
            result["paddleclas_img_per_s"] = None
            result["ratio"] = None
            print("no --paddleclas-src: measured ppipe only (the baseline needs PaddleClas's source tree)",
                  file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:28s} {v:.1f}" if isinstance(v, float) else f"{k:28s} {v}")


if __name__ == "__main__":
    main()
