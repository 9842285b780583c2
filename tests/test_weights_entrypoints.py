"""Every place ppipe loads weights refuses a crafted `.pdparams` (a pickle that runs code when unpickled) before
its payload runs: `create_model(pretrained=)`, `Global.pretrained_model` in a real config, a distillation
teacher's `pretrained`, each file of a resumed checkpoint. (A pulled artifact loaded by `ppipe predict`:
tests/test_predict.py.) Each test proves the payload never ran: its marker file is never created."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import paddle
import pytest

from ppipe import weights_io
from ppipe.weights_io import UnsafeWeightsError

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
SMALL = "PPLCNet_x0_25"


class _Payload:
    """Pickles as `os.system(command)`: what a crafted weights file carries."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def write_malicious_weights(path: Path, marker: Path, like: dict | None = None) -> Path:
    """A pickle at `path` that creates `marker` when unpickled; with `like`, hidden inside a real state dict."""
    state = {k: np.asarray(v) for k, v in (like or {"fc.weight": np.zeros((2, 2), "float32")}).items()}
    state["fc.weight"] = [np.zeros(1), _Payload(f"touch {marker}")]
    path.write_bytes(pickle.dumps(state, protocol=2))
    return path


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    yield write_malicious_weights(tmp_path / "evil.pdparams", marker), marker
    assert not marker.exists(), "the crafted pickle's payload ran"


def test_the_payload_is_live_under_plain_pickle(tmp_path):
    """The refusals below mean something: the same file runs its payload when unpickled plainly."""
    marker = tmp_path / "MARKER"
    with open(write_malicious_weights(tmp_path / "w.pdparams", marker), "rb") as f:
        pickle.load(f)
    assert marker.exists()


def test_create_model_pretrained_refuses_a_crafted_pickle(evil):
    from ppipe.models import create_model

    path, _ = evil
    with pytest.raises(UnsafeWeightsError, match=rf"{path}.*posix\.system"):
        create_model(SMALL, num_classes=10, pretrained=str(path))


def test_global_pretrained_model_of_a_real_config_refuses_a_crafted_pickle(evil, digits_prepared):
    from ppipe.config import load_config
    from ppipe.train.loop import build_worker_run

    path, _ = evil
    cfg = load_config(QUICKSTART, [f"Global.pretrained_model={path}"])
    with pytest.raises(UnsafeWeightsError, match=str(path)):
        build_worker_run(cfg, digits_prepared, rank=0, world=1)


def test_distillation_teacher_pretrained_refuses_a_crafted_pickle(evil):
    import yaml

    from ppipe.build import build_model
    from ppipe.config import load_config

    path, _ = evil
    data = yaml.safe_load(QUICKSTART.read_text())
    data["Arch"] = {"name": "DistillationModel", "class_num": 10, "freeze_params_list": [True, False],
                    "models": [{"Teacher": {"name": SMALL, "pretrained": str(path)}}, {"Student": {"name": SMALL}}],
                    "infer_model_name": "Student"}
    data["Loss"]["Train"] = [{"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}}]
    data["Metric"] = {s: [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 5]}}] for s in ("Train", "Eval")}
    with pytest.raises(UnsafeWeightsError, match=str(path)):
        build_model(load_config(data=data))


def _training_objects(ema: bool):
    from ppipe.models import create_model
    from ppipe.train.ema import ModelEMA

    paddle.seed(0)
    # a fresh name scope, as in the fresh process that resumes: the optimizer state's tensor names then match
    with paddle.utils.unique_name.guard():
        model = create_model(SMALL, num_classes=10)
        lr = paddle.optimizer.lr.StepDecay(0.1, step_size=2)
        optimizer = paddle.optimizer.Momentum(learning_rate=lr, parameters=model.parameters())
        model(paddle.randn([2, 3, 32, 32])).mean().backward()
        optimizer.step()
    return model, optimizer, lr, (ModelEMA(model, 0.9) if ema else None)


@pytest.mark.parametrize("tampered", ["model.pdparams", "ema.pdparams", "optimizer.pdopt"])
def test_resumed_checkpoint_refuses_a_crafted_file_in_place_of_any_of_its_files(tmp_path, tampered):
    from ppipe.train.checkpoint import load_checkpoint, save_checkpoint
    from ppipe.train.state import TrainState

    model, optimizer, lr, ema = _training_objects(ema=True)
    ckpt = tmp_path / "checkpoint"
    save_checkpoint(str(ckpt), model, optimizer, lr, TrainState(), ema)
    marker = tmp_path / "PAYLOAD_RAN"
    write_malicious_weights(ckpt / tampered, marker)
    with pytest.raises(UnsafeWeightsError, match=rf"{ckpt / tampered}"):
        model2, optimizer2, lr2, ema2 = _training_objects(ema=True)
        load_checkpoint(str(ckpt), model2, optimizer2, lr2, ema2)
    assert not marker.exists()


def test_checkpoints_are_safetensors_and_resume_exactly(tmp_path):
    from ppipe.train.checkpoint import load_checkpoint, save_checkpoint
    from ppipe.train.state import TrainState

    model, optimizer, lr, ema = _training_objects(ema=True)
    ckpt = tmp_path / "checkpoint"
    save_checkpoint(str(ckpt), model, optimizer, lr, TrainState(epochs_completed=3), ema)
    for name in ("model.pdparams", "ema.pdparams", "infer_model.pdparams", "optimizer.pdopt"):
        assert weights_io.weights_format(ckpt / name) == "safetensors", name
    model2, optimizer2, lr2, ema2 = _training_objects(ema=True)
    for p in model2.parameters():
        p.set_value(paddle.zeros_like(p))
    state = load_checkpoint(str(ckpt), model2, optimizer2, lr2, ema2)
    assert state.epochs_completed == 3
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(model2.state_dict()[key].numpy(), value.numpy(), err_msg=key)
    for key, value in optimizer.state_dict().items():
        if isinstance(value, paddle.Tensor):
            np.testing.assert_array_equal(optimizer2.state_dict()[key].numpy(), value.numpy(), err_msg=key)


def test_published_weights_are_a_paddle_pickle_that_plain_paddle_load_reads(tmp_path):
    """PaddleClas users `paddle.load` a published `model.pdparams`: it stays a Paddle pickle (written from the
    safely loaded checkpoint state)."""
    from ppipe.train.checkpoint import save_checkpoint, write_published_weights
    from ppipe.train.state import TrainState

    model, optimizer, lr, ema = _training_objects(ema=True)
    ckpt = tmp_path / "checkpoint"
    save_checkpoint(str(ckpt), model, optimizer, lr, TrainState(), ema)
    dest = tmp_path / "model.pdparams"
    write_published_weights(str(ckpt), str(dest))
    assert weights_io.weights_format(dest) == "pickle"
    loaded = paddle.load(str(dest))
    for key, value in ema.state_dict().items():
        np.testing.assert_allclose(np.asarray(loaded[key]), value.numpy(), err_msg=key)


def test_a_checkpoint_saved_as_a_paddle_pickle_before_the_switch_still_resumes(tmp_path):
    from ppipe.train.checkpoint import load_checkpoint, save_checkpoint
    from ppipe.train.state import TrainState

    model, optimizer, lr, _ = _training_objects(ema=False)
    ckpt = tmp_path / "checkpoint"
    save_checkpoint(str(ckpt), model, optimizer, lr, TrainState(epochs_completed=1))
    paddle.save(model.state_dict(), str(ckpt / "model.pdparams"))
    paddle.save({"optimizer": optimizer.state_dict(), "lr": lr.state_dict()}, str(ckpt / "optimizer.pdopt"))
    model2, optimizer2, lr2, _ = _training_objects(ema=False)
    assert load_checkpoint(str(ckpt), model2, optimizer2, lr2).epochs_completed == 1
    key = next(iter(model.state_dict()))
    np.testing.assert_array_equal(model2.state_dict()[key].numpy(), model.state_dict()[key].numpy())


# ---- Arch.pretrained and Global.checkpoints: honoured as in PaddleClas, or refused --------------------------------

def _quickstart(*overrides):
    from ppipe.config import load_config

    return load_config(QUICKSTART, list(overrides))


def test_arch_pretrained_path_starts_the_run_from_it_as_global_pretrained_model_does(evil, digits_prepared):
    from ppipe.train.loop import build_worker_run
    from ppipe.train.trainer import resolved_for_workers

    path, _ = evil
    resolved = resolved_for_workers(_quickstart(f"Arch.pretrained={path}"), False)
    assert resolved.Global.pretrained_model == str(path)
    with pytest.raises(UnsafeWeightsError, match=str(path)):  # and it goes through the safe loader
        build_worker_run(resolved, digits_prepared, rank=0, world=1)
    both = resolved_for_workers(_quickstart(f"Arch.pretrained={path}", "Global.pretrained_model=/w.pdparams"), False)
    assert both.Global.pretrained_model == "/w.pdparams"  # loaded last in PaddleClas, so it wins


@pytest.mark.parametrize("override, says", [("Arch.pretrained=True", "Global.pretrained_model=PATH"),
                                            ("Global.checkpoints=output/x/epoch_3", "--resume")])
def test_settings_ppipe_does_not_honour_are_refused_saying_what_to_use(override, says):
    from ppipe.config import ConfigError
    from ppipe.train.trainer import resolved_for_workers

    with pytest.raises(ConfigError, match=re.escape(says)):
        resolved_for_workers(_quickstart(override), False)
