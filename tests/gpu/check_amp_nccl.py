"""GPU checks of what the CPU test suite cannot run: AMP O1/O2 training, exact O2 resume, nccl + sync BN.

Run on a GPU machine with Paddle's GPU build (Paddle's own package index, see infra/) and ppipe installed:

    python tests/gpu/check_amp_nccl.py [--steps 20] [--batch 32] [--size 224]

Prints one `PASS`/`FAIL`/`SKIP` line per item and exits 1 if any item failed. Items:

* `env`: Paddle is a CUDA build and sees a GPU.
* `amp_O1`: ResNet50, `--steps` training steps on one random batch with ppipe's AMP (O1, dynamic loss scaling
  from 65536) through the loop's own `forward_backward` and `MixedPrecision.step`: convolutions compute in
  float16, weights stay float32, every loss is finite, the loss falls, the loss scale stays positive and finite.
* `amp_O2`: the same at O2: convolution weights float16, BatchNorm weights float32, the optimizer keeps
  float32 master weights, `state_dict()` is float32, evaluation outputs are float32, the loss falls.
* `amp_O2_nhwc_ultra`: PaddleClas's "ultra" form, ResNet50 with `input_image_channel: 4` and `data_format:
  NHWC`, trains at O2 on 4-channel batches (zero fourth channel), the loss falls, and its float32 evaluation
  logits equal those of the NCHW network that `ppipe export` builds from the same weights (float16 tolerance).
* `amp_O2_exact_resume`: an O2 run checkpointed (ppipe's checkpoint: weights, optimizer with master weights,
  loss scaler) and restored into a fresh model takes the next step exactly as the original run does.
* `sync_bn_nccl`: 2 Ray workers over nccl (ppipe's PaddleBackend) each feed different data through a
  BatchNorm network converted by `sync_batchnorm`: the synchronized running means agree across ranks, those of
  an unconverted copy do not.
* `train_2_workers_nccl`: `ppipe.train.trainer.train` on 2 GPU workers, ResNet50 on the embedded digits,
  AMP O1 + `Arch.use_sync_bn`, one epoch: completes with a top-1 and no restarts. `Ray.use_gpu` is left unset,
  so `Global.device: gpu` must place the workers on the GPUs, and the result must say `float16 AMP O1`.

The two nccl items need 2 GPUs (NCCL does not put two ranks on one device) and are SKIPped with fewer.
Not collected by pytest (no GPU in CI).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import paddle

ROOT = Path(__file__).resolve().parents[2]
RESULTS: list[tuple[str, str, str]] = []


def record(item: str, fn, *args) -> None:
    try:
        outcome = fn(*args)
        status, detail = ("SKIP", outcome[5:]) if isinstance(outcome, str) and outcome.startswith("SKIP:") \
            else ("PASS", outcome or "")
    except Exception as e:  # a check's failure is its result; the next checks still run
        status, detail = "FAIL", f"{type(e).__name__}: {e}"
        traceback.print_exc(file=sys.stderr)
    RESULTS.append((item, status, detail))
    print(f"{status} {item}: {detail}", flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


# --- single GPU ---------------------------------------------------------------------------------------------------

def check_env() -> str:
    check(paddle.is_compiled_with_cuda(), "this Paddle is not a CUDA build")
    n = paddle.device.cuda.device_count()
    check(n >= 1, "no GPU visible")
    paddle.set_device("gpu")
    # fixed cuDNN algorithms: the resume check compares two runs' steps exactly
    paddle.set_flags({"FLAGS_cudnn_deterministic": True})
    return f"paddle {paddle.__version__}, {n} GPU(s), {paddle.device.cuda.get_device_name()}"


def _resnet_step_setup(level: str, args, seed: int = 0, **model_kw):
    from ppipe.config.schema import AMPSection
    from ppipe.models import create_model
    from ppipe.train.amp import MixedPrecision
    from ppipe.losses import CombinedLoss

    paddle.seed(seed)
    model = create_model("ResNet50", num_classes=1000, **model_kw)
    lr = paddle.optimizer.lr.StepDecay(0.01, step_size=1000)
    optimizer = paddle.optimizer.Momentum(learning_rate=lr, momentum=0.9, parameters=model.parameters())
    precision = MixedPrecision(AMPSection(use_amp=True, level=level, scale_loss=65536.0,
                                          use_dynamic_loss_scaling=True), gpu=True)
    criterion = CombinedLoss([{"CELoss": {"weight": 1.0}}], "Loss.Train")
    return model, optimizer, lr, precision, criterion


def _batch(args, seed: int = 1, channels: int = 3):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((args.batch, channels, args.size, args.size)).astype("float32")
    images[:, 3:] = 0.0  # PaddleClas's fourth channel is zero padding
    images = paddle.to_tensor(images)
    labels = paddle.to_tensor(rng.integers(0, 1000, args.batch).astype("int64"))
    return images, labels


def _train(model, optimizer, precision, criterion, images, labels, steps: int) -> list[float]:
    from ppipe.train.loop import forward_backward

    model.train()
    losses = []
    for _ in range(steps):
        loss, _ = forward_backward(model, criterion, precision, images, labels)
        precision.step(optimizer)
        optimizer.clear_grad()
        losses.append(float(loss))
    return losses


def _first(model, kind):
    return next(layer for layer in model.sublayers() if isinstance(layer, kind))


def _loss_fell(losses: list[float]) -> None:
    check(all(np.isfinite(losses)), f"non-finite loss: {losses}")
    check(np.mean(losses[-3:]) < losses[0], f"loss did not fall on a fixed batch: {losses}")


def _scale(precision) -> float:
    scale = float(np.asarray(precision.state_dict()["scale"]).reshape(-1)[0])
    check(np.isfinite(scale) and scale > 0, f"loss scale {scale}")
    return scale


def check_amp_o1(args) -> str:
    model, optimizer, _, precision, criterion = _resnet_step_setup("O1", args)
    conv_out = []
    _first(model, paddle.nn.Conv2D).register_forward_post_hook(lambda layer, inp, out: conv_out.append(out.dtype))
    images, labels = _batch(args)
    losses = _train(model, optimizer, precision, criterion, images, labels, args.steps)
    check(conv_out and all(d == paddle.float16 for d in conv_out), f"O1 convolution outputs: {set(conv_out)}")
    check(all(p.dtype == paddle.float32 for p in model.parameters()), "O1 changed weight dtypes")
    _loss_fell(losses)
    return f"loss {losses[0]:.3f} -> {losses[-1]:.3f} in {args.steps} steps, loss scale {_scale(precision):g}"


def check_amp_o2(args) -> str:
    from ppipe.train.amp import for_evaluation

    model, optimizer, _, precision, criterion = _resnet_step_setup("O2", args)
    model, optimizer = precision.decorate(model, optimizer)
    conv, bn = _first(model, paddle.nn.Conv2D), _first(model, paddle.nn.BatchNorm2D)
    check(conv.weight.dtype == paddle.float16, f"O2 convolution weight {conv.weight.dtype}")
    check(bn.weight.dtype == paddle.float32 and bn._mean.dtype == paddle.float32, "O2 cast BatchNorm")
    images, labels = _batch(args)
    losses = _train(model, optimizer, precision, criterion, images, labels, args.steps)
    check(bool(optimizer._master_weights), "O2 optimizer has no float32 master weights")
    check(all(w.dtype == paddle.float32 for w in optimizer._master_weights.values()), "master weights not float32")
    check(all(v.dtype == paddle.float32 for v in model.state_dict().values() if paddle.is_floating_point(v)),
          "O2 state_dict is not float32 (checkpoints would not be PaddleClas files)")
    evaluated = for_evaluation(model, precision)
    evaluated.eval()
    with paddle.no_grad():
        logits = evaluated(images[:2])
    check(logits.dtype == paddle.float32 and bool(paddle.isfinite(logits).all()), "O2 evaluation output")
    _loss_fell(losses)
    return f"loss {losses[0]:.3f} -> {losses[-1]:.3f} in {args.steps} steps, loss scale {_scale(precision):g}"


def check_amp_o2_nhwc_ultra(args) -> str:
    from ppipe.models import create_model
    from ppipe.train.amp import for_evaluation
    from ppipe.build import inference_kwargs

    kw = {"input_image_channel": 4, "data_format": "NHWC"}
    model, optimizer, _, precision, criterion = _resnet_step_setup("O2", args, **kw)
    model, optimizer = precision.decorate(model, optimizer)
    images, labels = _batch(args, channels=4)
    losses = _train(model, optimizer, precision, criterion, images, labels, args.steps)
    _loss_fell(losses)
    evaluated = for_evaluation(model, precision)
    evaluated.eval()
    exported = create_model("ResNet50", num_classes=1000, **inference_kwargs(kw))
    exported.set_state_dict(model.state_dict())  # float32, as checkpoints are
    exported.eval()
    with paddle.no_grad():
        got, want = evaluated(images[:4]).numpy(), exported(images[:4]).numpy()
    rel = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    check(rel < 2e-2, f"NHWC float16 evaluation vs NCHW float32: relative error {rel:.2e}")
    return f"loss {losses[0]:.3f} -> {losses[-1]:.3f}, NHWC float16 vs exported NCHW float32: {rel:.1e}"


def check_amp_o2_exact_resume(args) -> str:
    from ppipe.train.checkpoint import load_checkpoint, save_checkpoint
    from ppipe.train.state import TrainState

    # Each run in its own name scope, as each start of a Ray worker is a new process: optimizer state is keyed by
    # generated accumulator names, which a second optimizer in one process would get with other suffixes.
    images, labels = _batch(args)
    with paddle.utils.unique_name.guard():
        model, optimizer, lr, precision, criterion = _resnet_step_setup("O2", args)
        model, optimizer = precision.decorate(model, optimizer)
        _train(model, optimizer, precision, criterion, images, labels, max(2, args.steps // 2))
    with tempfile.TemporaryDirectory() as d:
        save_checkpoint(d, model, optimizer, lr, TrainState(), amp=precision)
        original = _train(model, optimizer, precision, criterion, images, labels, 2)
        after_original = {k: v.numpy() for k, v in model.state_dict().items()}

        with paddle.utils.unique_name.guard():
            fresh, fresh_opt, fresh_lr, fresh_precision, _ = _resnet_step_setup("O2", args, seed=123)
            load_checkpoint(d, fresh, fresh_opt, fresh_lr, amp=fresh_precision)  # float32, before decorate
            fresh, fresh_opt = fresh_precision.decorate(fresh, fresh_opt)
            resumed = _train(fresh, fresh_opt, fresh_precision, criterion, images, labels, 2)
    check(np.allclose(resumed, original, rtol=1e-6, atol=0), f"resumed losses {resumed} != {original}")
    worst = max(float(np.abs(v.numpy().astype(np.float64) - after_original[k]).max())
                for k, v in fresh.state_dict().items())
    check(worst == 0.0, f"resumed weights differ from the original run's by up to {worst}")
    check(_scale(fresh_precision) == _scale(precision), "resumed loss scale differs from the original run's")
    return f"next 2 losses {original} reproduced; weights identical; scale {_scale(fresh_precision):g}"


# --- two GPUs, Ray, nccl ------------------------------------------------------------------------------------------

def _bn_net():
    nn = paddle.nn
    return nn.Sequential(nn.Conv2D(3, 8, 3, padding=1), nn.BatchNorm2D(8), nn.ReLU(),
                         nn.Conv2D(8, 8, 3, padding=1), nn.BatchNorm2D(8))


def _sync_bn_worker(config: dict) -> None:
    import ray.train

    from ppipe.train.amp import sync_batchnorm
    from ppipe.train.backend import init_collective

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    paddle.set_device("gpu")
    init_collective()
    paddle.seed(0)  # the same initial weights on every rank
    synced = paddle.DataParallel(sync_batchnorm(_bn_net(), True, gpu=True, world=world))
    plain = _bn_net()
    # each rank draws its own data with its own mean, so per-rank BatchNorm statistics differ
    paddle.seed(1 + rank)
    x = paddle.randn([8, 3, 16, 16]) + float(rank * 3)
    synced.train()
    plain.train()
    synced(x)
    plain(x)
    n_sync = sum(isinstance(layer, paddle.nn.SyncBatchNorm) for layer in synced._layers.sublayers())
    # the first BatchNorm sees the rank's data directly: its running mean is where a difference shows
    result = {"synced": synced._layers[1]._mean.numpy().tolist(), "plain": plain[1]._mean.numpy().tolist(),
              "n_sync": n_sync}
    Path(config["out"], f"rank{rank}.json").write_text(json.dumps(result))


def _init_ray():
    import ray

    if not ray.is_initialized():
        ray.init(address="local", include_dashboard=False, configure_logging=False)


def _two_gpus() -> str | None:
    n = paddle.device.cuda.device_count() if paddle.is_compiled_with_cuda() else 0
    return None if n >= 2 else f"SKIP: needs 2 GPUs (NCCL puts one rank per device), this machine has {n}"


def check_sync_bn_nccl(args) -> str:
    import ray.train
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from ppipe.train.backend import PaddleBackendConfig

    if (skip := _two_gpus()) is not None:
        return skip
    _init_ray()
    with tempfile.TemporaryDirectory() as out:
        DataParallelTrainer(
            _sync_bn_worker, train_loop_config={"out": out},
            backend_config=PaddleBackendConfig(backend="nccl"),
            scaling_config=ray.train.ScalingConfig(num_workers=2, use_gpu=True),
            run_config=ray.train.RunConfig(name="gpu-check-sync-bn", storage_path=os.path.join(out, "ray")),
        ).fit()
        ranks = [json.loads(Path(out, f"rank{r}.json").read_text()) for r in (0, 1)]
    check(all(r["n_sync"] == 2 for r in ranks), f"SyncBatchNorm layers per rank: {[r['n_sync'] for r in ranks]}")
    check(np.allclose(ranks[0]["synced"], ranks[1]["synced"], atol=1e-5),
          "synchronized BatchNorm running means differ across ranks")
    check(not np.allclose(ranks[0]["plain"], ranks[1]["plain"], atol=1e-2),
          "the unsynchronized control agrees across ranks: the check would not see a difference")
    return "running means equal across 2 nccl ranks (per-rank control differs)"


def check_train_2_workers_nccl(args) -> str:
    from ppipe.config import load_config
    from ppipe.data import prepare_dataset, write_digits_demo
    from ppipe.train.trainer import train

    if (skip := _two_gpus()) is not None:
        return skip
    _init_ray()
    with tempfile.TemporaryDirectory() as tmp:
        write_digits_demo(os.path.join(tmp, "src"), image_size=32)
        prepare_dataset(os.path.join(tmp, "src"), os.path.join(tmp, "prepared"), shard_size=256, progress=False)
        cfg = load_config(ROOT / "configs" / "quickstart.yaml", [
            "Arch.name=ResNet50", "Arch.use_sync_bn=true", "Global.device=gpu",
            "Ray.num_workers=2", "Global.epochs=1", "Global.eval_interval=1", f"Global.output_dir={tmp}/out",
            f"Ray.storage_path={tmp}/ray", "Tracking.wandb_mode=disabled", "AMP.use_amp=true", "AMP.level=O1",
            "AMP.scale_loss=65536.0", "AMP.use_dynamic_loss_scaling=true", "DataLoader.Train.sampler.batch_size=64"])
        result = train(cfg, data=os.path.join(tmp, "prepared"))
    final = result.history[-1]
    check(result.epochs_completed == 1 and result.restarts == 0, f"{result.summary()}")
    check(result.precision == "float16 AMP O1", f"precision {result.precision}: not placed on the GPUs?")
    check(result.top1 is not None and 0.0 <= result.top1 <= 1.0, f"top1 {result.top1}")
    check(np.isfinite(final["train_loss"]), f"train loss {final['train_loss']}")
    return f"top1 {result.top1:.3f}, train loss {final['train_loss']:.3f}, {result.train_img_per_s:.0f} img/s"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    record("env", check_env)
    if RESULTS[-1][1] != "PASS":
        for item in ("amp_O1", "amp_O2", "amp_O2_nhwc_ultra", "amp_O2_exact_resume", "sync_bn_nccl",
                     "train_2_workers_nccl"):
            RESULTS.append((item, "SKIP", "no usable GPU"))
            print(f"SKIP {item}: no usable GPU")
        return 1
    record("amp_O1", check_amp_o1, args)
    record("amp_O2", check_amp_o2, args)
    record("amp_O2_nhwc_ultra", check_amp_o2_nhwc_ultra, args)
    record("amp_O2_exact_resume", check_amp_o2_exact_resume, args)
    record("sync_bn_nccl", check_sync_bn_nccl, args)
    record("train_2_workers_nccl", check_train_2_workers_nccl, args)
    failed = [item for item, status, _ in RESULTS if status == "FAIL"]
    print(f"{len(RESULTS) - len(failed)}/{len(RESULTS)} without failure" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
