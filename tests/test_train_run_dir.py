"""The run's file names (`RunDir`, `CheckpointDir`), its typed training state, and the frozen config the workers
get: fast checks without Ray."""

import copy
import os
from pathlib import Path

import pytest

from ppipe.config import load_config
from ppipe.train.run_dir import CheckpointDir, RunDir, RunStorage
from ppipe.train.state import TrainState

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


def test_run_dir_names_every_file_of_the_run_under_output_dir_and_run_name(tmp_path):
    cfg = load_config(QUICKSTART, [f"Global.output_dir={tmp_path}/out", "Ray.run_name=exp1"])
    run = RunDir.for_config(cfg)
    assert run.root == os.path.join(str(tmp_path), "out", "exp1") and os.fspath(run) == run.root
    assert Path(run) / "model.pdparams" == Path(run.model)
    names = {os.path.relpath(p, run.root) for p in (run.model, run.summary, run.metrics, run.curves, run.config,
                                                    run.eval, run.inference, run.export_report)}
    assert names == {"model.pdparams", "train.json", "metrics.json", "curves.csv", "config.yaml", "eval.json",
                     "inference", "export.json"}
    elsewhere = RunDir.for_config(load_config(QUICKSTART, [f"Tracking.metrics_file={tmp_path}/m.json"]))
    assert elsewhere.metrics == f"{tmp_path}/m.json"


def test_published_files_need_the_trained_model_then_the_export_and_take_the_reports_that_exist(tmp_path):
    run = RunDir(str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="train the run first"):
        run.published_files()
    os.makedirs(run.inference)
    for path in (run.model, run.config, run.summary):
        Path(path).write_text("x")
    with pytest.raises(FileNotFoundError, match="run `ppipe export` first"):
        run.published_files()
    Path(run.inference, "model.json").write_text("{}")
    Path(run.inference, "model.pdiparams").write_text("w")
    assert run.published_files() == {"model.pdparams": run.model, "config.yaml": run.config, "train.json": run.summary,
                                     "inference/model.json": os.path.join(run.inference, "model.json"),
                                     "inference/model.pdiparams": os.path.join(run.inference, "model.pdiparams")}


def test_a_checkpoint_publishes_its_infer_model_when_it_saved_one(tmp_path):
    ckpt = CheckpointDir(str(tmp_path))
    Path(ckpt.model).write_text("live")
    assert ckpt.published_weights() == ckpt.model
    Path(ckpt.infer_model).write_text("student or EMA")
    assert ckpt.published_weights() == ckpt.infer_model
    storage = RunStorage("s3://bucket/runs", "exp-1")
    assert storage.attempts("t0") == "s3://bucket/runs/exp-1/attempts/t0"
    assert storage.workers("t0") == "s3://bucket/runs/exp-1/workers/t0"


def test_train_state_round_trips_and_a_state_file_with_unknown_keys_is_named():
    state = TrainState(epochs_completed=2, global_step=46, history=[{"epoch": 1}, {"epoch": 2, "top1": 0.5}])
    assert TrainState.from_dict(state.to_dict()) == state
    assert state.final_metrics == {"epoch": 2, "top1": 0.5}
    state.batches_this_start = 7
    state.start_again(restarts=1)
    assert (state.restarts, state.batches_this_start) == (1, 0)
    with pytest.raises(ValueError, match=r"ckpt/state\.json: unknown training-state keys \['epoch'\]"):
        TrainState.from_dict({"epoch": 1}, where="ckpt/state.json")


def test_workers_get_a_resolved_copy_and_the_callers_config_is_left_as_it_was(tmp_path, monkeypatch):
    from ppipe.train.trainer import resolved_for_workers

    monkeypatch.chdir(tmp_path)
    cfg = load_config(QUICKSTART, ["Global.pretrained_model=weights/teacher.pdparams"])
    before = copy.deepcopy(cfg)
    resolved = resolved_for_workers(cfg, use_gpu=False)
    assert cfg == before  # nothing written back
    assert resolved.Global.pretrained_model == str(tmp_path / "weights" / "teacher.pdparams")
    assert resolved.Ray.use_gpu is False and cfg.Ray.use_gpu is None
    assert resolved.Optimizer == cfg.Optimizer and resolved.DataLoader == cfg.DataLoader


def test_the_scaled_learning_rate_is_built_for_the_workers_but_never_written_onto_the_config(digits_prepared,
                                                                                             monkeypatch):
    from ppipe.train.loop import build_worker_run

    monkeypatch.setattr("ppipe.train.loop.on_gpu", lambda: False)
    cfg = load_config(QUICKSTART, ["Global.recipe_workers=8", "Optimizer.lr.learning_rate=0.8",
                                   "Optimizer.lr.warmup_epoch=0", "Global.image_shape=[3, 16, 16]",
                                   "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16"])
    run = build_worker_run(cfg, digits_prepared, rank=0, world=2)
    assert cfg.Optimizer.lr.learning_rate == 0.8
    assert run.lr.get_lr() == pytest.approx(0.2)  # Cosine at its first step: the scaled rate
    assert "8 workers" in run.state.lr_scaling and run.state.precision == "float32"
