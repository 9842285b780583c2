"""Training throughput on CPU: ppipe's training path against PyTorch (torchvision) on the same architecture.

One training step = forward, cross-entropy, backward, SGD-with-momentum update, on a fixed random batch
(batch 32 at 224x224 by default): the model's compute only, no data loading (see input_pipeline.py for that).
Contestants, each in a fresh process per round so that OpenMP runtimes and allocator state never mix:

* `ppipe`: the zoo model as `ppipe train` builds it (`Global.cpu_kernels` default: ppipe's oneDNN
  convolutions, ppipe/ops), Paddle eager;
* `paddle`: the same zoo model on Paddle's own eager CPU kernels (`cpu_kernels: paddle`), what PaddleClas's
  tools/train.py runs;
* `torch`: torchvision's model of the same architecture (the `bench` extra: torch 2.14.1, torchvision 0.29.1);
* `torch_keepmem` (optional, `--contestants`): torch with the malloc settings ppipe's training path applies
  (ppipe/ops/host_memory.py), to show how much of the difference is the allocator alone;
* `ppipe_1x1_onednn`, `ppipe_1x1_paddle` (optional): ppipe with every 1x1 convolution forced onto one kernel
  (`PPIPE_POINTWISE_CONV`), against `ppipe`'s default of choosing each shape's kernel by timing both.

All use the same number of math threads (default: every core). Rounds alternate the contestants so that other
load on the machine hits all of them; the medians' ratios against the baseline (`--baseline`, torch by default)
are the result.

    python benchmarks/train_throughput.py [--models resnet50,mobilenet_v3_large] [--rounds 5] [--steps 4]
    python benchmarks/train_throughput.py --contestants ppipe,ppipe_1x1_paddle,ppipe_1x1_onednn \
        --baseline ppipe_1x1_paddle --retime-1x1

It prints the medians, each contestant's ratio to the baseline (medians' ratio, and the median and range of the
per-round ratios), the CPU model and the load average over the run, and for ppipe how many 1x1 convolutions
ran on each kernel and how long their timing took.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import machine

# benchmark name -> (ppipe zoo name, torchvision constructor)
MODELS = {
    "resnet50": ("ResNet50", "resnet50"),
    "mobilenet_v3_large": ("MobileNetV3_large_x1_0", "mobilenet_v3_large"),
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2"),
    "resnet18": ("ResNet18", "resnet18"),
}
CONTESTANTS = ("ppipe", "paddle", "torch")
# ppipe with its 1x1 convolutions forced onto one kernel: PPIPE_POINTWISE_CONV for the contestant's process
FORCED_1X1 = {"ppipe_1x1_onednn": "onednn", "ppipe_1x1_paddle": "paddle"}
OPTIONAL_CONTESTANTS = ("torch_keepmem", *FORCED_1X1)


def _paddle_step(zoo_name: str, kernels: str, batch: int, size: int, retime_1x1: bool):
    import paddle

    from ppipe.models import create_model
    from ppipe.ops.onednn import accelerate_for_cpu_training, pointwise_kernels
    from ppipe.ops.pointwise_tuning import AUTO, default_store, pointwise_mode, process_tuner

    if retime_1x1 and pointwise_mode() == AUTO:  # this machine's stored 1x1 decisions: gone, so that this
        default_store().path.unlink(missing_ok=True)  # process times every shape anew
    paddle.seed(0)
    model = create_model(zoo_name, num_classes=1000)
    note = accelerate_for_cpu_training(model, kernels)
    if kernels == "onednn":  # as ppipe's training workers do (ppipe.train.loop)
        from ppipe.ops.host_memory import keep_freed_memory

        note += "; " + keep_freed_memory()
    model.train()
    opt = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=model.parameters(), weight_decay=1e-4)
    x = paddle.randn([batch, 3, size, size])
    y = paddle.randint(0, 1000, [batch, 1])

    def step():
        loss = paddle.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        return float(loss)  # waits for the step, like torch's .item()

    def describe() -> str:  # after the steps: how the 1x1 convolutions chose
        split = pointwise_kernels(model)
        if not sum(split.values()):
            return note
        return (note + f"; 1x1 by timing: {split['onednn']} oneDNN, {split['paddle']} Paddle "
                f"({process_tuner().describe()})")

    return step, describe


def _torch_step(tv_name: str, batch: int, size: int, threads: int):
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = getattr(torchvision.models, tv_name)(num_classes=1000)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 1000, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    note = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    return step, lambda: note


def measure(contestant: str, model: str, batch: int, size: int, steps: int, warmup: int, threads: int,
            retime_1x1: bool = False) -> dict:
    """One contestant's images/s in this process (called in a child process by `main`)."""
    zoo_name, tv_name = MODELS[model]
    if contestant in ("torch", "torch_keepmem"):
        if contestant == "torch_keepmem":
            from ppipe.ops.host_memory import keep_freed_memory

            keep_freed_memory()
        step, describe = _torch_step(tv_name, batch, size, threads)
    else:
        kernels = "paddle" if contestant == "paddle" else "onednn"
        step, describe = _paddle_step(zoo_name, kernels, batch, size, retime_1x1)
    t0 = time.perf_counter()
    for _ in range(warmup):  # first steps build kernels / primitives, time 1x1 shapes and grow the allocator
        step()
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = time.perf_counter() - t0
    return {"contestant": contestant, "model": model, "img_per_s": batch * steps / dt, "warmup_s": warmup_s,
            "note": describe()}


def _child(args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env.setdefault("PYTHONPATH", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if args.contestant_ in FORCED_1X1:
        env["PPIPE_POINTWISE_CONV"] = FORCED_1X1[args.contestant_]
    cmd = [sys.executable, os.path.abspath(__file__), "--child", args.contestant_, "--models", args.model_,
           "--batch", str(args.batch), "--size", str(args.size), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--threads", str(args.threads)] + (["--retime-1x1"] if args.retime_1x1
                                                                             else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{args.contestant_} on {args.model_} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="resnet50,mobilenet_v3_large")
    p.add_argument("--contestants", default=",".join(CONTESTANTS))
    p.add_argument("--baseline", default="torch", help="the contestant the ratios are taken against")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--retime-1x1", action="store_true",
                   help="ppipe's processes forget this machine's stored 1x1 kernel decisions and time anew")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return args
    args.models_ = [m for m in args.models.split(",") if m]
    unknown = [m for m in args.models_ if m not in MODELS]
    if unknown:
        p.error(f"--models: unknown {unknown}; choose from {sorted(MODELS)}")
    args.contestants_ = [c for c in args.contestants.split(",") if c]
    if [c for c in args.contestants_ if c not in CONTESTANTS + OPTIONAL_CONTESTANTS]:
        p.error(f"--contestants: choose from {CONTESTANTS + OPTIONAL_CONTESTANTS}")
    if args.baseline not in args.contestants_:
        p.error(f"--baseline {args.baseline!r}: not among --contestants {args.contestants_}")
    return args


def main(argv=None) -> int:
    args = _parse(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.models, args.batch, args.size, args.steps, args.warmup,
                                 args.threads, args.retime_1x1)))
        return 0

    models, contestants = args.models_, args.contestants_
    results: dict[str, dict[str, list[float]]] = {m: {c: [] for c in contestants} for m in models}
    notes: dict[tuple[str, str], list[str]] = {(m, c): [] for m in models for c in contestants}
    load = machine.LoadSampler()
    for r in range(args.rounds):
        for m in models:
            order = contestants if r % 2 == 0 else contestants[::-1]
            for c in order:
                args.contestant_, args.model_ = c, m
                load.sample()
                res = _child(args)
                results[m][c].append(res["img_per_s"])
                notes[(m, c)].append(res["note"])
                print(f"round {r + 1} {m:20s} {c:16s} {res['img_per_s']:7.2f} img/s (warm-up {res['warmup_s']:.1f} s; "
                      f"load {load.samples[-1]:.1f})", file=sys.stderr, flush=True)
    load.sample()
    summary = _report(args, results, notes, load)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0


def _report(args, results, notes, load) -> dict:
    """Print the medians, the ratios to the baseline and what each side ran on; the same as a document."""
    contestants, base = args.contestants_, args.baseline
    summary = {"batch": args.batch, "size": args.size, "threads": args.threads, "rounds": args.rounds,
               "steps": args.steps, "cpu": machine.cpu_model(), "load_average": load.samples, "baseline": base,
               "models": {}}
    print(f"\n{machine.cpu_model()}; {load.describe()}")
    print(f"batch {args.batch} at {args.size}x{args.size}, {args.threads} threads, median of {args.rounds} "
          f"rounds x {args.steps} steps (img/s)")
    print(f"{'model':20s} " + " ".join(f"{c:>16s}" for c in contestants) + f"   ratios vs {base}")
    for m in args.models_:
        med = {c: statistics.median(v) for c, v in results[m].items()}
        ratios = {c: med[c] / med[base] for c in contestants if c != base}
        # Each round's ratio (contestants of one round ran minutes apart, under similar load): their range is
        # the spread to quote beside the medians' ratio.
        per_round = {c: [a / b for a, b in zip(results[m][c], results[m][base])] for c in ratios}
        summary["models"][m] = {"median_img_per_s": med, f"ratio_vs_{base}": ratios, "runs": results[m],
                                f"round_ratios_vs_{base}": per_round,
                                "notes": {c: notes[(m, c)] for c in contestants}}
        print(f"{m:20s} " + " ".join(f"{med[c]:16.2f}" for c in contestants) + "   "
              + " ".join(f"{c}={v:.2f}x (rounds {machine.median_and_spread(per_round[c])})"
                         for c, v in ratios.items()))
    # What each side ran on (ppipe: which layers went to oneDNN, or why not): a fallback is not ppipe's path.
    for m in args.models_:
        for c in contestants:
            for r, note in enumerate(notes[(m, c)]):
                if r == 0 or note != notes[(m, c)][0]:
                    print(f"{m} {c} (round {r + 1}): {note}")
            if c.startswith("ppipe") and not notes[(m, c)][0].startswith("onednn kernels"):
                print(f"WARNING: {m}: {c} ran on Paddle's kernels, not its own: this is not ppipe's training "
                      "path (see the note above)")
    return summary


if __name__ == "__main__":
    sys.exit(main())
