"""Training on a real local Ray instance: two workers over gloo, checkpoints, resume, worker failure."""

import json
import os
from pathlib import Path

import numpy as np
import paddle
import pytest

from ppipe import weights_io
from ppipe.config import ConfigError, load_config
from ppipe.train.trainer import train

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


def _cfg(tmp_path, *extra):
    return load_config(QUICKSTART, [
        f"Global.output_dir={tmp_path}/out", "Global.image_shape=[3, 16, 16]", "Global.eval_interval=1",
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16",
        "Optimizer.lr.warmup_epoch=0", "DataLoader.Train.sampler.batch_size=64", *extra])


def _local_checkpoint_copies() -> set[Path]:
    """The workers' local checkpoint folders before Ray uploads them (ppipe.train.loop's report)."""
    import tempfile

    return set(Path(tempfile.gettempdir()).glob("ppipe-checkpoint-*"))


def _last_rank_dies_once(monkeypatch, *, epoch: int, step: int, marker: Path, delay_s: float = 5.0) -> None:
    """Make the last rank die like an OOM-killed process at batch `step` of `epoch` (1-based), once per run (the
    marker file remembers that it did).

    The workers run `ppipe.train.loop.train_loop` in their own processes, so the patch travels with the worker
    function: Ray pickles this closure by value, and in the worker it wraps the loop's `train_step`.
    """
    import ppipe.train.loop as loop

    real_loop = loop.train_loop

    def dying_worker(loop_config):
        import os
        import time

        import ray.train

        import ppipe.train.loop as worker_loop

        real_step = worker_loop.train_step
        ctx = ray.train.get_context()

        def train_step(run, batch, *args, **kwargs):
            if (run.state.epochs_completed + 1 == epoch and batch == step
                    and ctx.get_world_rank() == ctx.get_world_size() - 1 and not os.path.exists(marker)):
                with open(marker, "w") as f:
                    f.write(f"killed rank {ctx.get_world_rank()} at epoch {epoch} step {step}\n")
                # Ray Train registers a reported checkpoint when its controller next polls the workers; a
                # failure inside that window restarts from the checkpoint before. Waiting past it makes the
                # test exercise the resume-from-last-checkpoint path deterministically.
                time.sleep(delay_s)
                os._exit(1)
            return real_step(run, batch, *args, **kwargs)

        worker_loop.train_step = train_step
        try:
            real_loop(loop_config)
        finally:
            worker_loop.train_step = real_step

    monkeypatch.setattr(loop, "train_loop", dying_worker)


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
    # every epoch's wall time and images (two workers: 1437 digits padded to an even split)
    train_images = json.loads(Path(digits_prepared, "manifest.json").read_text())["splits"]["train"]["num_images"]
    assert [h["train_images"] for h in result.history] == [train_images + train_images % 2] * 2
    assert all(h["epoch_time_s"] > 0 for h in result.history)
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
        # No autoscaler on one node: the controller asked none (Ray would have created this detached actor).
        with pytest.raises(ValueError):
            ray.get_actor("AutoscalingCoordinator", namespace="AutoscalingCoordinator")
    finally:
        ray.shutdown()
    workers = [json.loads(p.read_text()) for p in Path(result.checkpoint).parent.glob("workers/*/*.json")]
    assert [w["niceness"] for w in workers] == [0]
    assert [w["training_thread_policy"] for w in workers] == ["SCHED_OTHER"]  # inherited SCHED_BATCH, undone
    assert [w["malloc"] for w in workers] == ["malloc keeps freed memory for reuse"]  # Global.cpu_kernels: onednn


def test_checkpoint_reports_leave_no_local_copy_and_all_arrive_through_the_faster_poll(tmp_path, digits_prepared,
                                                                                         local_ray):
    """Reports go out asynchronously (Ray uploads the checkpoint and queues the report in its own thread, then
    deletes the local copy), and the controller polls every 0.5 s instead of 2 s. Mid-epoch and epoch-end
    reports all arrive in order; the last is the run's checkpoint; the worker saw the poll interval that Ray Train
    passed on from the driver, and the driver's environment is left as it was."""
    before = _local_checkpoint_copies()
    assert "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S" not in os.environ
    result = train(_cfg(tmp_path, "Global.epochs=2", "Ray.num_workers=1", "Global.checkpoint_every_steps=5"),
                   data=digits_prepared)
    assert "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S" not in os.environ
    assert _local_checkpoint_copies() <= before
    from ppipe.train.checkpoint import load_state

    state = load_state(result.checkpoint)
    assert state.epochs_completed == 2 and state.batch_in_epoch == 0
    assert state.global_step == 2 * 23  # ceil(1437 / 64) steps an epoch, none lost to a pending upload
    kept = [p for p in Path(result.checkpoint).parent.iterdir() if p.is_dir() and p.name.startswith("checkpoint_")]
    assert len(kept) == 2  # num_to_keep: the older of 11 reports' checkpoints were deleted in order
    workers = [json.loads(p.read_text()) for p in Path(result.checkpoint).parent.glob("workers/*/*.json")]
    assert [w["controller_poll_interval_s"] for w in workers] == ["0.5"]


def test_in_process_mode_keeps_only_the_latest_checkpoint_which_is_the_result(tmp_path, digits_prepared):
    """Ray.num_workers: 0 is Ray Train's in-process mode: no run storage, nothing uploads or deletes the reported
    checkpoints; ppipe keeps the latest (the run's result) and removes the ones before it."""
    import shutil

    from ppipe.train.checkpoint import load_state

    before = _local_checkpoint_copies()
    result = train(_cfg(tmp_path, "Global.epochs=2", "Ray.num_workers=0"), data=digits_prepared)
    left = _local_checkpoint_copies() - before
    assert [str(p) for p in left] == [result.checkpoint]
    assert load_state(result.checkpoint).epochs_completed == 2 and result.epochs_completed == 2
    assert Path(result.run_dir, "model.pdparams").exists()
    shutil.rmtree(result.checkpoint)


def test_resume_continues_a_named_run_from_its_last_epoch(tmp_path, digits_prepared, local_ray):
    first = train(_cfg(tmp_path, "Global.epochs=1", "Ray.num_workers=1"), data=digits_prepared)
    resumed = train(_cfg(tmp_path, "Global.epochs=2", "Ray.num_workers=1"), data=digits_prepared,
                    resume=first.run_name)
    assert resumed.run_name == first.run_name
    assert [h["epoch"] for h in resumed.history] == [1, 2]  # epoch 1 not repeated
    assert resumed.restarts == 0
    latest = train(_cfg(tmp_path, "Global.epochs=2", "Ray.num_workers=1"), data=digits_prepared, resume=True)
    assert latest.run_name == first.run_name and latest.epochs_completed == 2


def test_worker_killed_mid_epoch_restarts_from_last_checkpoint(tmp_path, digits_prepared, local_ray, monkeypatch):
    marker = tmp_path / "killed"
    _last_rank_dies_once(monkeypatch, epoch=2, step=5, marker=marker)
    result = train(_cfg(tmp_path, "Global.epochs=2", "Ray.max_failures=1"), data=digits_prepared)
    assert marker.exists()  # the worker really died
    assert result.restarts == 1
    assert [h["epoch"] for h in result.history] == [1, 2]  # nothing repeated, nothing skipped
    assert [h["restarts"] for h in result.history] == [0, 1]  # epoch 2 was finished by the restarted group


def test_failure_before_the_first_checkpoint_still_counts_as_a_restart(tmp_path, digits_prepared, local_ray,
                                                                     monkeypatch):
    marker = tmp_path / "killed"
    _last_rank_dies_once(monkeypatch, epoch=1, step=2, marker=marker, delay_s=0.0)
    result = train(_cfg(tmp_path, "Global.epochs=1", "Ray.max_failures=1"), data=digits_prepared)
    assert marker.exists() and result.restarts == 1 and result.epochs_completed == 1


def test_missing_or_unprepared_data_is_named(tmp_path):
    with pytest.raises(Exception, match=r"no manifest\.json"):
        train(_cfg(tmp_path), data=str(tmp_path / "nothing-here"))
    with pytest.raises(ConfigError, match="--data"):
        train(_cfg(tmp_path, "Data.prepared=null"))


def test_resume_without_an_earlier_run_is_an_error(tmp_path, digits_prepared):
    with pytest.raises(ConfigError, match="no earlier run"):
        train(_cfg(tmp_path), data=digits_prepared, resume=True)


def test_mid_epoch_checkpoint_resumes_at_its_batch_after_a_failure(tmp_path, digits_prepared, local_ray, monkeypatch):
    """1437 images, 2 workers, batch 64: 12 batches per epoch. Checkpoints every 4 steps; the last worker dies
    at batch 9 of epoch 2, after the checkpoint at batch 8, so the restart trains only batches 8..11."""
    marker = tmp_path / "killed"
    _last_rank_dies_once(monkeypatch, epoch=2, step=9, marker=marker)
    result = train(_cfg(tmp_path, "Global.epochs=2", "Ray.max_failures=1", "Global.checkpoint_every_steps=4"),
                   data=digits_prepared)
    assert marker.exists() and result.restarts == 1
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[-1]["global_step"] == 24  # every batch of both epochs stepped exactly once
    assert result.history[-1]["batches_this_start"] == 4  # resumed at batch 8, not at the epoch's start


def test_ema_weights_are_the_published_ones(tmp_path, digits_prepared, local_ray):
    result = train(_cfg(tmp_path, "Global.epochs=1", "Ray.num_workers=1", "EMA.decay=0.9"), data=digits_prepared)
    ckpt = Path(result.checkpoint)
    ema = weights_io.load_state(ckpt / "ema.pdparams")  # checkpoints are safetensors
    live = weights_io.load_state(ckpt / "model.pdparams")
    published = paddle.load(os.path.join(result.run_dir, "model.pdparams"))  # a Paddle pickle, for PaddleClas
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


def test_ray_train_runs_only_the_helper_actors_ppipe_uses(tmp_path, monkeypatch):
    """No dataset manager anywhere (ppipe passes no Ray Datasets); on the embedded instance also no placement-group
    cleaner (no State API there: it could only warn every second) and no autoscaler requests (ppipe.train.
    ray_trainer); clusters keep those."""
    import ray.train
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback
    from ray.train.v2._internal.execution.scaling_policy import FixedScalingPolicy
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from ppipe.train.ray_trainer import EmbeddedInstanceTrainer, FixedNodeScalingPolicy, PpipeTrainer
    from ppipe.train.trainer import _trainer_class

    assert _trainer_class(_cfg(tmp_path, "Ray.address=ray://head:10001")) is PpipeTrainer
    assert _trainer_class(_cfg(tmp_path)) is EmbeddedInstanceTrainer
    kinds = {}
    for cls in (DataParallelTrainer, PpipeTrainer, EmbeddedInstanceTrainer):
        trainer = cls(lambda: None, scaling_config=ray.train.ScalingConfig(num_workers=1),
                      run_config=ray.train.RunConfig(storage_path=str(tmp_path)))
        kinds[cls] = [type(cb) for cb in trainer._create_default_callbacks()]
    # Ray Train still has the callbacks by those names: otherwise the filters would silently stop working.
    assert {DatasetsCallback, PlacementGroupCleanerCallback} <= set(kinds[DataParallelTrainer])
    assert kinds[PpipeTrainer] == [k for k in kinds[DataParallelTrainer] if k is not DatasetsCallback]
    assert kinds[EmbeddedInstanceTrainer] == [k for k in kinds[PpipeTrainer] if k is not PlacementGroupCleanerCallback]
    # The embedded instance's controller gets the fixed-size policy that asks no autoscaler.
    seen = {}
    monkeypatch.setattr(DataParallelTrainer, "_initialize_and_run_controller",
                        lambda self, **kwargs: seen.update(kwargs))
    trainer = EmbeddedInstanceTrainer(lambda: None, scaling_config=ray.train.ScalingConfig(num_workers=1),
                                      run_config=ray.train.RunConfig(storage_path=str(tmp_path)))
    trainer._initialize_and_run_controller(scaling_policy=FixedScalingPolicy(trainer.scaling_config))
    policy = seen["scaling_policy"]
    assert type(policy) is FixedNodeScalingPolicy and policy.scaling_config is trainer.scaling_config
    policy.after_controller_start(None)
    policy.make_decision_for_non_running_worker_group()  # would assert on a missing coordinator client
