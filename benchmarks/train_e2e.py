"""Training throughput as a user meets it: `ppipe train` on a zoo recipe against torchvision's same architecture.

ppipe's side is the command a user runs, on the recipe as published (its data pipeline: decoding, random
crops, flips, AutoAugment or Mixup where the recipe has them, ppipe's loader workers; ppipe's default kernels
and thread count), on one Ray worker on CPU:

    ppipe train configs/ImageNet/<Family>/<Model>.yaml --data PREPARED -o Global.epochs=2 -o Global.device=cpu
        -o Ray.num_workers=1 -o Ray.use_gpu=false -o DataLoader.Train.sampler.batch_size=B --json

and its figure is the `train_img_per_s` of that document (steady images/s of the second epoch). The baseline is
torchvision's model of the same architecture training on random tensors (no data at all: forward,
cross-entropy, backward, SGD with momentum), same batch size, with as many math threads as the machine has
CPUs (`--threads`), the steps measured after the same warm-up. ResNet50_vd has no torchvision twin: its
baseline is torchvision's ResNet50 (the vd stem and downsampling add ~5% FLOPs on ppipe's side).

The dataset is a small synthetic ImageNet-layout set of 224x224 JPEGs (crops of scikit-learn's sample photos,
`input_pipeline.make_jpegs`), prepared with ppipe's own `prepare_dataset` once under `--cache`. Rounds
alternate the two sides (ppipe first in odd rounds, torch first in even ones); the result is the median of the
per-round ratios with their range, printed with the CPU model and the load average.

    python benchmarks/train_e2e.py [--models ResNet50_vd,MobileNetV3_large_x1_0] [--rounds 5] [--batch 16]
                                   [-o Ray.threads_per_worker=2 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import machine
import train_throughput

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP_STEPS = 3  # as ppipe's loop leaves out of its steady rate

# zoo name -> (recipe, torchvision baseline in train_throughput.MODELS)
MODELS = {
    "ResNet50_vd": ("configs/ImageNet/ResNet/ResNet50_vd.yaml", "resnet50"),
    "ResNet50": ("configs/ImageNet/ResNet/ResNet50.yaml", "resnet50"),
    "MobileNetV3_large_x1_0": ("configs/ImageNet/MobileNetV3/MobileNetV3_large_x1_0.yaml", "mobilenet_v3_large"),
    "ResNet18": ("configs/ImageNet/ResNet/ResNet18.yaml", "resnet18"),
}


def prepared_dataset(cache: str, images: int, classes: int) -> str:
    """The synthetic dataset, made and prepared once per (images, classes) under `cache`."""
    from input_pipeline import make_jpegs

    from ppipe.data import prepare_dataset

    prepared = os.path.join(cache, f"e2e-{images}x{classes}", "prepared")
    done = os.path.join(prepared, ".complete")
    if not os.path.exists(done):
        source = os.path.join(cache, f"e2e-{images}x{classes}", "source")
        make_jpegs(source, images, classes=classes, size=(224, 224))
        os.remove(os.path.join(source, "train_list.txt"))  # the class folders are the layout to read
        prepare_dataset(source, prepared, progress=False)
        open(done, "w").close()
    return prepared


def run_ppipe(model: str, prepared: str, batch: int, overrides: list[str]) -> dict:
    """One `ppipe train ... --json` in a fresh process; its img/s and the math threads the run says it used."""
    recipe = MODELS[model][0]
    with tempfile.TemporaryDirectory() as out:
        settings = ["Global.epochs=2", "Global.device=cpu", "Ray.num_workers=1", "Ray.use_gpu=false",
                    f"DataLoader.Train.sampler.batch_size={batch}", f"Global.output_dir={out}",
                    "Global.eval_during_train=false", "Tracking.wandb_mode=disabled",
                    # torchvision's side trains its 1000-way head: ppipe keeps the recipe's 1000 outputs too
                    # (on the synthetic set's few classes), so both do the same work per step
                    "Global.allow_class_subset=true"] + overrides
        cmd = [sys.executable, "-m", "ppipe", "train", os.path.join(ROOT, recipe), "--data", prepared, "--json"]
        for s in settings:
            cmd += ["-o", s]
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out)
    if done.returncode != 0:
        raise RuntimeError(f"ppipe train {model} failed:\n{done.stderr[-4000:]}")
    threads = [line for line in done.stderr.splitlines() if "math thread" in line]
    return {"img_per_s": float(json.loads(done.stdout)["train_img_per_s"]),
            "note": threads[-1].strip() if threads else "the run did not log its math threads"}


def run_torch(model: str, batch: int, threads: int, steps: int) -> dict:
    """torchvision's model on random tensors, in a fresh process (train_throughput's torch contestant)."""
    args = argparse.Namespace(contestant_="torch", model_=MODELS[model][1], batch=batch, size=224, steps=steps,
                              warmup=WARMUP_STEPS, threads=threads, retime_1x1=False)
    return train_throughput._child(args)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="ResNet50_vd,MobileNetV3_large_x1_0")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=8, help="steady steps per epoch (after the warm-up ones)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch's math threads")
    p.add_argument("-o", "--override", action="append", default=[], help="more `ppipe train -o` settings")
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "ppipe-bench"))
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    if [m for m in models if m not in MODELS]:
        p.error(f"--models: choose from {sorted(MODELS)}")

    prepared = prepared_dataset(args.cache, args.batch * (WARMUP_STEPS + args.steps), args.classes)
    load = machine.LoadSampler()
    runs = {m: {"ppipe": [], "torch": [], "ratio": []} for m in models}
    notes = {}
    for r in range(args.rounds):
        for m in models:
            order = ("ppipe", "torch") if r % 2 == 0 else ("torch", "ppipe")
            got = {}
            for side in order:
                load.sample()
                res = (run_ppipe(m, prepared, args.batch, args.override) if side == "ppipe"
                       else run_torch(m, args.batch, args.threads, args.steps))
                got[side] = res["img_per_s"]
                notes[(m, side)] = res["note"]
                runs[m][side].append(res["img_per_s"])
            runs[m]["ratio"].append(got["ppipe"] / got["torch"])
            print(f"round {r + 1} {m:24s} ppipe {got['ppipe']:6.2f}  torch {got['torch']:6.2f} img/s  "
                  f"ratio {runs[m]['ratio'][-1]:.2f}  (load {load.samples[-1]:.1f})", file=sys.stderr, flush=True)
    load.sample()

    print(f"\n{machine.cpu_model()}; {load.describe()}")
    print(f"batch {args.batch} at 224, {args.rounds} alternating rounds; ppipe: `ppipe train` with "
          f"{' '.join(args.override) or 'its defaults'}; torch: {args.threads} threads, random tensors")
    print("median (min-max) img/s and ppipe/torch ratio per round")
    for m in models:
        print(f"{m:24s} ppipe {machine.median_and_spread(runs[m]['ppipe'])}  torch "
              f"{machine.median_and_spread(runs[m]['torch'])}  ratio {machine.median_and_spread(runs[m]['ratio'])}")
        for side in ("ppipe", "torch"):
            print(f"  {side}: {notes[(m, side)]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": machine.cpu_model(), "load_average": load.samples, "batch": args.batch,
                       "overrides": args.override, "threads_torch": args.threads,
                       "models": {m: {**runs[m], "median_ratio": statistics.median(runs[m]["ratio"])}
                                  for m in models}}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
