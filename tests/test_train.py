"""Training on a real local Ray instance: two workers over gloo, checkpoints, resume, worker failure."""

import json
import os
from pathlib import Path

import numpy as np
import paddle
import pytest

from ppipe.config import ConfigError, load_config
from ppipe.train.trainer import train

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


def _cfg(tmp_path, *extra):
    return load_config(QUICKSTART, [
        f"Global.output_dir={tmp_path}/out", "Global.image_shape=[3, 16, 16]", "Global.eval_interval=1",
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16",
        "Optimizer.lr.warmup_epoch=0", "DataLoader.Train.sampler.batch_size=64", *extra])


def _checkpoints(result):
    run = Path(result.checkpoint).parent
    return sorted(p.name for p in run.iterdir() if p.name.startswith("checkpoint_"))


def test_two_workers_train_and_report_the_contract_summary(tmp_path, digits_prepared, local_ray):
    result = train(_cfg(tmp_path, "Global.epochs=2"), data=digits_prepared)
    summary = result.summary()
    assert {"model", "epochs_completed", "top1", "checkpoint", "restarts", "train_img_per_s",
            "precision"} <= set(summary)
    assert summary["precision"] == "float32"
    assert summary["model"] == "PPLCNet_x0_25"
    assert summary["epochs_completed"] == 2 and summary["restarts"] == 0
    assert 0.0 <= summary["top1"] <= 1.0 and summary["train_img_per_s"] > 0
    assert [h["epoch"] for h in result.history] == [1, 2]
    # the run's weights load as a PaddleClas-keyed state dict into a fresh model
    from ppipe.models import create_model
    model = create_model("PPLCNet_x0_25", num_classes=10, pretrained=os.path.join(result.run_dir, "model.pdparams"))
    assert model(paddle.randn([1, 3, 16, 16])).shape == [1, 10]
    metrics = json.loads(Path(result.run_dir, "metrics.json").read_text())
    assert metrics["train"]["epochs"] == 2 and metrics["train"]["top1"] == summary["top1"]
    assert Path(result.run_dir, "curves.csv").read_text().count("\n") == 3


def test_gpu_recipe_with_amp_trains_on_a_cluster_without_gpus_in_float32_and_says_so(tmp_path, digits_prepared,
                                                                                   local_ray, caplog):
    """PaddleClas's recipes say Global.device: gpu and often AMP; with Ray.use_gpu unset they run on whatever
    the cluster has. Here: CPU workers, float32, both said (log and --json)."""
    import logging

    cfg = _cfg(tmp_path, "Global.epochs=1", "Global.device=gpu", "AMP.use_amp=true", "AMP.level=O2",
               "Ray.num_workers=1")
    assert cfg.Ray.use_gpu is None
    with caplog.at_level(logging.INFO, logger="ppipe.train"):
        result = train(cfg, data=digits_prepared)
    assert result.epochs_completed == 1 and result.summary()["precision"] == "float32"
    assert any("Global.device: gpu, but the Ray cluster has no GPUs: training on CPU workers" in r.getMessage()
               for r in caplog.records)


def test_gpu_placement_follows_ray_use_gpu_or_else_global_device_and_the_clusters_gpus(tmp_path):
    from ppipe.train.trainer import resolve_use_gpu

    gpu_recipe = _cfg(tmp_path, "Global.device=gpu")
    assert resolve_use_gpu(gpu_recipe, {"CPU": 16.0, "GPU": 8.0}) == (
        True, "Global.device: gpu: training on GPU workers (the Ray cluster has 8 GPUs)")
    assert resolve_use_gpu(gpu_recipe, {"CPU": 2.0})[0] is False
    assert resolve_use_gpu(_cfg(tmp_path), {"CPU": 2.0, "GPU": 8.0})[0] is False  # Global.device: cpu
    assert resolve_use_gpu(_cfg(tmp_path, "Ray.use_gpu=true"), {"CPU": 2.0}) == (
        True, "Ray.use_gpu: true: training on GPU workers")  # waits for GPU nodes
    assert resolve_use_gpu(_cfg(tmp_path, "Global.device=gpu", "Ray.use_gpu=false"), {"GPU": 8.0})[0] is False


def test_training_workers_of_ppipes_own_ray_instance_are_not_niced_and_ray_yields_to_them(tmp_path, digits_prepared):
    """Ray starts workers at nice 15 unless told otherwise; ppipe's local instance runs them at 0 (the training
    workers are the job, Ray's background processes must not preempt them). The workers, and only they, keep
    freed memory for reuse."""
    import ray

    ray.shutdown()  # ppipe starts its own local instance
    try:
        result = train(_cfg(tmp_path, "Global.epochs=1", "Ray.num_workers=1"), data=digits_prepared)
        # Ray's own processes yield to the training threads (ppipe.train.scheduling); the driver's thread that
        # started them is back at the default policy.
        ray_processes = ray._private.worker._global_node.all_processes
        for kind in ("raylet", "gcs_server"):
            for info in ray_processes[kind]:
                assert os.sched_getscheduler(info.process.pid) == os.SCHED_BATCH, kind
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
        # Nothing drains the embedded instance's one node: no preemption watcher actor beside the workers.
        assert ray.get_runtime_context().runtime_env["env_vars"]["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] == "0"
    finally:
        ray.shutdown()
    workers = [json.loads(p.read_text()) for p in Path(result.checkpoint).parent.glob("workers/*/*.json")]
    assert [w["niceness"] for w in workers] == [0]
    assert [w["training_thread_policy"] for w in workers] == ["SCHED_OTHER"]  # inherited SCHED_BATCH, undone
    assert [w["malloc"] for w in workers] == ["malloc keeps freed memory for reuse"]  # Global.cpu_kernels: onednn


def test_resume_continues_a_named_run_from_its_last_epoch(tmp_path, digits_prepared, local_ray):
    first = train(_cfg(tmp_path, "Global.epochs=1", "Ray.num_workers=1"), data=digits_prepared)
    resumed = train(_cfg(tmp_path, "Global.epochs=2", "Ray.num_workers=1"), data=digits_prepared,
                    resume=first.run_name)
    assert resumed.run_name == first.run_name
    assert [h["epoch"] for h in resumed.history] == [1, 2]  # epoch 1 not repeated
    assert resumed.restarts == 0
    latest = train(_cfg(tmp_path, "Global.epochs=2", "Ray.num_workers=1"), data=digits_prepared, resume=True)
    assert latest.run_name == first.run_name and latest.epochs_completed == 2


def test_worker_killed_mid_epoch_restarts_from_last_checkpoint(tmp_path, digits_prepared, local_ray):
    marker = tmp_path / "killed"
    result = train(_cfg(tmp_path, "Global.epochs=2", "Ray.max_failures=1"), data=digits_prepared,
                   fail_at={"epoch": 2, "step": 5, "marker": str(marker)})
    assert marker.exists()  # the worker really died
    assert result.restarts == 1
    assert [h["epoch"] for h in result.history] == [1, 2]  # nothing repeated, nothing skipped
    assert [h["restarts"] for h in result.history] == [0, 1]  # epoch 2 was finished by the restarted group


def test_failure_before_the_first_checkpoint_still_counts_as_a_restart(tmp_path, digits_prepared, local_ray):
    marker = tmp_path / "killed"
    result = train(_cfg(tmp_path, "Global.epochs=1", "Ray.max_failures=1"), data=digits_prepared,
                   fail_at={"epoch": 1, "step": 2, "marker": str(marker), "delay_s": 0.0})
    assert marker.exists() and result.restarts == 1 and result.epochs_completed == 1


def test_missing_or_unprepared_data_is_named(tmp_path):
    with pytest.raises(Exception, match=r"no manifest\.json"):
        train(_cfg(tmp_path), data=str(tmp_path / "nothing-here"))
    with pytest.raises(ConfigError, match="--data"):
        train(_cfg(tmp_path, "Data.prepared=null"))


def test_resume_without_an_earlier_run_is_an_error(tmp_path, digits_prepared):
    with pytest.raises(ConfigError, match="no earlier run"):
        train(_cfg(tmp_path), data=digits_prepared, resume=True)


def test_mid_epoch_checkpoint_resumes_at_its_batch_after_a_failure(tmp_path, digits_prepared, local_ray):
    """1437 images, 2 workers, batch 64: 12 batches per epoch. Checkpoints every 4 steps; the last worker dies
    at batch 9 of epoch 2, after the checkpoint at batch 8, so the restart trains only batches 8..11."""
    marker = tmp_path / "killed"
    result = train(_cfg(tmp_path, "Global.epochs=2", "Ray.max_failures=1", "Global.checkpoint_every_steps=4"),
                   data=digits_prepared, fail_at={"epoch": 2, "step": 9, "marker": str(marker)})
    assert marker.exists() and result.restarts == 1
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[-1]["global_step"] == 24  # every batch of both epochs stepped exactly once
    assert result.history[-1]["batches_this_start"] == 4  # resumed at batch 8, not at the epoch's start


def test_ema_weights_are_the_published_ones(tmp_path, digits_prepared, local_ray):
    result = train(_cfg(tmp_path, "Global.epochs=1", "Ray.num_workers=1", "EMA.decay=0.9"), data=digits_prepared)
    ckpt = Path(result.checkpoint)
    ema = paddle.load(str(ckpt / "ema.pdparams"))
    live = paddle.load(str(ckpt / "model.pdparams"))
    published = paddle.load(os.path.join(result.run_dir, "model.pdparams"))
    assert set(published) == set(live)
    key = next(k for k in live if k.endswith("weight"))
    assert np.allclose(published[key].numpy(), ema[key].numpy())
    assert not np.allclose(published[key].numpy(), live[key].numpy())


def test_learning_rate_scales_linearly_with_the_worker_count():
    from ppipe.train.loop import scaled_learning_rate

    cfg = load_config(QUICKSTART, ["Global.recipe_workers=8", "Optimizer.lr.learning_rate=0.8"])
    lr, note = scaled_learning_rate(cfg, 2)
    assert lr == pytest.approx(0.2) and "8 workers" in note and "2 workers" in note
    assert scaled_learning_rate(cfg, 8) == (0.8, None)
    assert scaled_learning_rate(load_config(QUICKSTART), 2)[1] is None


def test_embedded_instance_trainer_leaves_out_only_the_placement_group_cleaner(tmp_path):
    """The embedded instance has no State API, so Ray Train's placement-group cleaner could only warn every second
    that it cannot ask it; clusters keep Ray Train's defaults."""
    import ray.train
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from ppipe.train.trainer import _trainer_class

    assert _trainer_class(_cfg(tmp_path, "Ray.address=ray://head:10001")) is DataParallelTrainer
    embedded = _trainer_class(_cfg(tmp_path))
    kinds = {}
    for cls in (DataParallelTrainer, embedded):
        trainer = cls(lambda: None, scaling_config=ray.train.ScalingConfig(num_workers=1),
                      run_config=ray.train.RunConfig(storage_path=str(tmp_path)))
        kinds[cls] = [type(cb) for cb in trainer._create_default_callbacks()]
    # Ray Train still has the callback by that name: otherwise the filter would silently stop working.
    assert PlacementGroupCleanerCallback in kinds[DataParallelTrainer]
    assert kinds[embedded] == [k for k in kinds[DataParallelTrainer] if k is not PlacementGroupCleanerCallback]
