"""Ray's overhead: `ppipe train` with one Ray worker against a bare single-process loop, same model and data.

Both sides train the same recipe (default: the quickstart's PP-LCNet x0.25 on the embedded digits, prepared
into shards here) for the same epochs, with the same model build (`Global.cpu_kernels`), optimizer, learning
rate schedule, loss, transforms, batch size and number of math threads:

* `ppipe`: `ppipe.train.train(cfg)` with `Ray.num_workers=1`: a local Ray instance, the Ray Train controller,
  one worker process running ppipe's training loop (per-epoch checkpoints through Ray, metrics, EMA/AMP hooks);
* `bare`: the loop a user would write: `iter_batches` -> forward -> loss -> backward -> step, in this
  process, no checkpoints, no evaluation.

Reported, first epoch left out, measured the same way on both sides:
* the steady training throughput: images/s over each epoch's steps after its first few;
* the epoch throughput: images/s over whole epochs, end to end, so for ppipe with its per-epoch checkpoint
  (written, then uploaded to the run storage and reported to Ray Train's controller) and metrics collectives;
and the end-to-end wall time (Ray start, worker start and shutdown included for ppipe). Rounds alternate the
two sides.

Also reported, because this host's speed drifts by up to 15% between runs while the interference itself is a
few percent: how long the training process's math threads waited for a CPU while runnable (the kernel's
per-thread run-queue delay, /proc/PID/task/TID/schedstat), as a share of their time, median of 1-second
windows. On the bare side that is the host's own background; on the ppipe side it adds the preemptions by
Ray's processes (GCS, raylet, Ray Train's controller and helper actors, the worker's own Ray threads).

    python benchmarks/ray_overhead.py [--config configs/quickstart.yaml] [--epochs 4] [--rounds 2] [-o KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP_STEPS = 3  # as ppipe's loop: the first steps of an epoch are left out of the steady rate


class RunQueueWait:
    """Samples, once a second, the run-queue delay of one process's busiest `threads` threads (its math
    threads); `share()` is the median over the windows of (delay / (delay + run time)), summed over them.

    `find_pid` is called until it returns the process (ppipe's Ray worker starts some seconds in)."""

    def __init__(self, find_pid, threads: int):
        import threading

        self._find_pid, self._threads, self._shares = find_pid, threads, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _schedstat(pid: int) -> dict[str, tuple[int, int]]:
        out = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    run_ns, wait_ns = (int(x) for x in f.read().split()[:2])
            except (OSError, ValueError):
                continue
            out[tid] = (run_ns, wait_ns)
        return out

    def _run(self) -> None:
        pid = None
        while pid is None and not self._stop.wait(0.5):
            pid = self._find_pid()
        before = None
        while pid is not None and not self._stop.wait(1.0):
            try:
                now = self._schedstat(pid)
            except OSError:  # the process ended
                return
            if before is not None:
                deltas = sorted(((now[t][0] - before[t][0], now[t][1] - before[t][1]) for t in now if t in before),
                                reverse=True)[:self._threads]
                run, wait = sum(d[0] for d in deltas), sum(d[1] for d in deltas)
                if run > 0.5e9 * self._threads:  # a window of training steps, not Ray's start or shutdown
                    self._shares.append(wait / (run + wait))
            before = now

    def share(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return statistics.median(self._shares) if self._shares else None


def _ray_worker_pid() -> int | None:
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if cmdline and cmdline[0].startswith("ray::RayTrainWorker"):
            return child.pid
    return None


def _config(args, output_dir: str):
    from ppipe.config import load_config

    threads = args.threads
    overrides = [f"Global.epochs={args.epochs}", f"Global.output_dir={output_dir}", "Ray.num_workers=1",
                 f"Ray.cpus_per_worker={threads}", f"Ray.threads_per_worker={threads}",
                 "Global.eval_during_train=False", "Tracking.wandb_mode=disabled"] + list(args.override or [])
    return load_config(args.config, overrides)


def run_ppipe(args, prepared: str) -> dict:
    from ppipe.train.trainer import train

    with tempfile.TemporaryDirectory() as out:
        cfg = _config(args, out)
        t0 = time.perf_counter()
        waits = RunQueueWait(_ray_worker_pid, args.threads)
        res = train(cfg, data=prepared)
        wall = time.perf_counter() - t0
    rates = [h["train_img_per_s"] for h in res.history]
    later = res.history[1:] or res.history
    return {"side": "ppipe", "steady_img_per_s": statistics.mean(rates[1:] or rates),
            "epoch_img_per_s": sum(h["train_images"] for h in later) / sum(h["epoch_time_s"] for h in later),
            "wall_s": wall, "epochs": res.epochs_completed, "runqueue_wait": waits.share()}


def run_bare(args, prepared: str) -> dict:
    import paddle

    from ppipe.data import iter_batches, num_batches
    from ppipe.build import build_model
    from ppipe.losses import CombinedLoss
    from ppipe.optim import build_lr, build_optimizer

    with tempfile.TemporaryDirectory() as out:
        cfg = _config(args, out)
    t0 = time.perf_counter()
    waits = RunQueueWait(os.getpid, args.threads)
    paddle.set_device("cpu")
    paddle.seed(cfg.Global.seed)
    train_cfg = cfg.DataLoader.Train
    bs = train_cfg.sampler.batch_size
    model = build_model(cfg)
    if cfg.Global.cpu_kernels == "onednn":  # the same process setting as ppipe's training workers
        from ppipe.ops.host_memory import keep_freed_memory

        keep_freed_memory()
    steps = num_batches(prepared, "train", bs, drop_last=train_cfg.sampler.drop_last)
    lr = build_lr(cfg.Optimizer.lr, cfg.Global.epochs, steps)
    optimizer = build_optimizer(cfg.Optimizer, model, lr)
    criterion = CombinedLoss(cfg.Loss.Train, "Loss.Train")
    rates, epoch_rates, epoch_mark = [], [], time.perf_counter()
    for epoch in range(cfg.Global.epochs):
        model.train()
        seen, t_steady, n_images = 0, None, 0
        for step, (images, labels) in enumerate(iter_batches(
                prepared, "train", train_cfg.dataset.transform_ops, bs, epoch=epoch,
                shuffle=train_cfg.sampler.shuffle, seed=cfg.Global.seed, drop_last=train_cfg.sampler.drop_last,
                num_workers=train_cfg.loader.num_workers)):
            if step == WARMUP_STEPS:
                t_steady, seen = time.perf_counter(), 0
            loss = criterion(model(paddle.to_tensor(images)), paddle.to_tensor(labels))
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            lr.step()
            float(loss)
            seen += len(labels)
            n_images += len(labels)
        now = time.perf_counter()
        rates.append(seen / (now - t_steady))
        epoch_rates.append((n_images, now - epoch_mark))
        epoch_mark = now
    later = epoch_rates[1:] or epoch_rates
    return {"side": "bare", "steady_img_per_s": statistics.mean(rates[1:] or rates),
            "epoch_img_per_s": sum(n for n, _ in later) / sum(t for _, t in later),
            "wall_s": time.perf_counter() - t0, "epochs": cfg.Global.epochs, "runqueue_wait": waits.share()}


def _child(args, side: str, prepared: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               WANDB_MODE="disabled")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", side, "--prepared", prepared,
           "--config", args.config, "--epochs", str(args.epochs), "--threads", str(args.threads)]
    for o in args.override or []:
        cmd += ["-o", o]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _verdict(overhead: float) -> str:
    return f"ppipe {overhead * 100:.1f}% slower" if overhead > 0 else f"ppipe {-overhead * 100:.1f}% faster"


def _percent(share: float | None) -> str:
    return "n/a (no /proc schedstat)" if share is None else f"{share * 100:.1f}%"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "quickstart.yaml"))
    p.add_argument("-o", "--override", action="append", help="config override KEY=VALUE (both sides)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--image-size", type=int, default=32, help="digits upscaled to this size")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--prepared", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        res = run_ppipe(args, args.prepared) if args.child == "ppipe" else run_bare(args, args.prepared)
        print(json.dumps(res))
        return 0

    from ppipe.data import prepare_dataset, write_digits_demo

    results: dict[str, list[dict]] = {"ppipe": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        write_digits_demo(os.path.join(tmp, "source"), image_size=args.image_size)
        prepared = os.path.join(tmp, "prepared")
        prepare_dataset(os.path.join(tmp, "source"), prepared, progress=False)
        for r in range(args.rounds):
            for side in (("ppipe", "bare") if r % 2 == 0 else ("bare", "ppipe")):
                res = _child(args, side, prepared)
                results[side].append(res)
                print(f"round {r + 1} {side:6s} steady {res['steady_img_per_s']:8.1f} img/s  epochs "
                      f"{res['epoch_img_per_s']:8.1f} img/s  wall {res['wall_s']:6.1f} s"
                      f"  math threads waiting for a CPU {_percent(res['runqueue_wait'])}", file=sys.stderr, flush=True)

    med = {s: {k: statistics.median(r[k] for r in v) for k in ("steady_img_per_s", "epoch_img_per_s", "wall_s")}
           for s, v in results.items()}
    for s, v in results.items():
        waits = [r["runqueue_wait"] for r in v if r["runqueue_wait"] is not None]
        med[s]["runqueue_wait"] = statistics.median(waits) if waits else None
    overhead = 1.0 - med["ppipe"]["steady_img_per_s"] / med["bare"]["steady_img_per_s"]
    epoch_overhead = 1.0 - med["ppipe"]["epoch_img_per_s"] / med["bare"]["epoch_img_per_s"]
    summary = {"config": args.config, "epochs": args.epochs, "threads": args.threads, "rounds": args.rounds,
               "median": med, "steady_overhead": overhead, "epoch_overhead": epoch_overhead,
               "wall_ratio": med["ppipe"]["wall_s"] / med["bare"]["wall_s"], "runs": results}
    print(f"\n{os.path.basename(args.config)}, {args.epochs} epochs, {args.threads} threads, median of {args.rounds}")
    print(f"steady training throughput: ppipe (1 Ray worker) {med['ppipe']['steady_img_per_s']:.1f} img/s, "
          f"bare loop {med['bare']['steady_img_per_s']:.1f} img/s: ratio {1 - overhead:.3f} ({_verdict(overhead)})")
    print(f"whole epochs (ppipe: with its per-epoch checkpoint and report): ppipe "
          f"{med['ppipe']['epoch_img_per_s']:.1f} img/s, bare loop {med['bare']['epoch_img_per_s']:.1f} img/s: "
          f"ratio {1 - epoch_overhead:.3f} ({_verdict(epoch_overhead)})")
    print(f"end to end: ppipe {med['ppipe']['wall_s']:.1f} s, bare {med['bare']['wall_s']:.1f} s "
          f"(Ray start, worker start, per-epoch checkpoints included)")
    print(f"math threads waiting for a CPU while runnable (median of 1 s windows): ppipe "
          f"{_percent(med['ppipe']['runqueue_wait'])}, bare loop {_percent(med['bare']['runqueue_wait'])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
