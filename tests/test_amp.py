"""Mixed precision (`AMP`) and sync BN on a CPU-only machine: what is validated at load, what a GPU recipe does on
CPU workers (float32, said out loud), the loss-scaler state that an exact resume needs, and the wiring the GPU path relies on.

Paddle runs AMP on GPUs only; the GPU behaviour itself is checked by `benchmarks/gpu_check.py` on a GPU machine.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import paddle
import pytest

import ppipe.train.amp as amp
from ppipe.config import ConfigError, load_config
from ppipe.config.loader import config_to_data
from ppipe.config.schema import AMPSection
from ppipe.train.amp import MixedPrecision, for_evaluation, sync_batchnorm
from ppipe.train.checkpoint import load_checkpoint, save_checkpoint
from ppipe.train.state import TrainState

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
GPU_RECIPE = ["Global.device=gpu", "Ray.use_gpu=true"]
AMP_ON = ["AMP.use_amp=true", "AMP.scale_loss=65536.0", "AMP.use_dynamic_loss_scaling=true"]


@pytest.fixture(autouse=True)
def _restore_amp_flags():
    saved = paddle.get_flags(["FLAGS_max_inplace_grad_add"])
    yield
    paddle.set_flags(saved)


@pytest.fixture
def enabled_scaler_on_cpu():
    """Let `paddle.amp.GradScaler` switch itself on at a CPU place (Paddle disables it off GPUs), so its state
    machine (scale, counters, state_dict) can be exercised here."""
    place = SimpleNamespace(is_gpu_place=lambda: True, is_xpu_place=lambda: False, is_custom_place=lambda: False)
    with mock.patch("paddle.amp.grad_scaler._dygraph_tracer", return_value=SimpleNamespace(_expected_place=place)):
        yield


# --- configuration ------------------------------------------------------------------------------------------------

def test_amp_level_must_be_o1_or_o2():
    with pytest.raises(ConfigError, match=r"AMP\.level: expected one of \['O1', 'O2'\], got 'O3'"):
        load_config(QUICKSTART, [*GPU_RECIPE, *AMP_ON, "AMP.level=O3"])


def test_unknown_amp_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown key AMP\.dtype"):
        load_config(QUICKSTART, ["AMP.dtype=bfloat16"])
    with pytest.raises(ConfigError, match=r"unknown key AMP\.use_amps; did you mean use_amp"):
        load_config(QUICKSTART, ["AMP.use_amps=true"])


def test_amp_in_a_recipe_that_says_cpu_loads_and_its_workers_train_in_float32_with_one_warning(digits_prepared,
                                                                                               caplog):
    """A GPU recipe smoke-tested on a CPU machine (`-o Global.device=cpu`) trains in float32, saying so once."""
    from ppipe.train.loop import build_worker_run

    cfg = load_config(QUICKSTART, [*AMP_ON, "AMP.level=O2", "Global.image_shape=[3, 16, 16]",
                                   "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16"])
    assert cfg.Global.device == "cpu" and cfg.AMP.use_amp
    paddle.set_device("cpu")
    with caplog.at_level(logging.WARNING, logger="ppipe.train"):
        run = build_worker_run(cfg, digits_prepared, rank=0, world=1)
    assert run.state.precision == "float32" and not run.precision.enabled
    warnings = [r.getMessage() for r in caplog.records if "AMP.use_amp" in r.getMessage()]
    assert len(warnings) == 1 and "training in float32" in warnings[0]
    # a GPU recipe loads whether or not this run places its workers on GPUs (PaddleClas's configs load unchanged)
    assert load_config(QUICKSTART, ["Global.device=gpu", *AMP_ON]).AMP.use_amp
    cfg = load_config(QUICKSTART, [*GPU_RECIPE, *AMP_ON, "AMP.level=O2", "AMP.use_fp16_test=true"])
    assert (cfg.AMP.use_amp, cfg.AMP.level, cfg.AMP.scale_loss) == (True, "O2", 65536.0)


def test_amp_scale_must_be_positive_and_o2_excludes_ema():
    with pytest.raises(ConfigError, match=r"AMP\.scale_loss: expected > 0"):
        load_config(QUICKSTART, [*GPU_RECIPE, *AMP_ON, "AMP.scale_loss=0"])
    with pytest.raises(ConfigError, match=r"EMA with AMP\.level O2"):
        load_config(QUICKSTART, [*GPU_RECIPE, *AMP_ON, "AMP.level=O2", "EMA.decay=0.999"])
    load_config(QUICKSTART, [*GPU_RECIPE, *AMP_ON, "AMP.level=O1", "EMA.decay=0.999"])


def test_use_sync_bn_is_an_arch_setting_not_a_model_argument():
    cfg = load_config(QUICKSTART, ["Arch.use_sync_bn=true"])
    assert cfg.Arch.use_sync_bn is True and "use_sync_bn" not in cfg.Arch.kwargs
    assert load_config(data=config_to_data(cfg)) == cfg


# --- refusing without a GPU ---------------------------------------------------------------------------------------

def test_paddle_autocast_on_cpu_is_a_no_op_even_in_bfloat16():
    """Why AMP is refused on CPU rather than run in bfloat16: Paddle 3.3.1 ignores auto_cast on a CPU place.
    Should a later Paddle compute in bfloat16 here, this fails and CPU AMP is worth revisiting."""
    conv = paddle.nn.Conv2D(3, 4, 3)
    with pytest.warns(UserWarning, match="amp_guard can only be enabled on"):
        with paddle.amp.auto_cast(level="O1", dtype="bfloat16"):
            out = conv(paddle.randn([1, 3, 8, 8]))
    assert out.dtype == paddle.float32


def test_amp_without_a_gpu_trains_in_float32_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="ppipe.train"):
        fallback = MixedPrecision(AMPSection(use_amp=True, level="O2"), gpu=False)
    assert not fallback.enabled and fallback.scaler is None and fallback.precision == "float32"
    assert any("AMP.use_amp" in r.getMessage() and "training in float32" in r.getMessage()
               and "Ray.use_gpu" in r.getMessage() for r in caplog.records)
    model = paddle.nn.Linear(2, 2)
    optimizer = paddle.optimizer.SGD(parameters=model.parameters())
    assert fallback.decorate(model, optimizer) == (model, optimizer)  # no float16 cast of the weights
    assert MixedPrecision(AMPSection(use_amp=True, level="O1"), gpu=True).precision == "float16 AMP O1"
    off = MixedPrecision(AMPSection(use_amp=False), gpu=False)  # float32 runs anywhere
    assert off.scaler is None and off.state_dict() == {}


def _gpu_cfg(*extra):
    return load_config(QUICKSTART, [*GPU_RECIPE, *AMP_ON, "Global.image_shape=[3, 16, 16]",
                                    "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
                                    "DataLoader.Train.sampler.batch_size=8", *extra])


def test_worker_setup_trains_an_amp_recipe_in_float32_when_the_gpu_branch_is_off(digits_prepared, monkeypatch):
    from ppipe.train.loop import build_worker_run

    monkeypatch.setattr("ppipe.train.loop.on_gpu", lambda: False)
    run = build_worker_run(_gpu_cfg("AMP.level=O2"), digits_prepared, rank=0, world=1)
    assert run.precision.precision == "float32" and run.precision.scaler is None
    assert all(p.dtype == paddle.float32 for p in run.model.parameters())  # O2 did not cast the weights


def test_worker_setup_accepts_amp_on_the_gpu_branch_and_trains_a_step(digits_prepared, monkeypatch):
    """With the GPU branch forced on, setup builds the AMP pieces and the loop's step runs (on this CPU Paddle
    turns auto_cast and the scaler into no-ops, so this checks the wiring, not float16 numerics)."""
    from ppipe.data import iter_batches
    from ppipe.evaluate import decode_first
    from ppipe.train.loop import build_worker_run, forward_backward

    monkeypatch.setattr("ppipe.train.loop.on_gpu", lambda: True)
    cfg = _gpu_cfg("AMP.level=O1")
    run = build_worker_run(cfg, digits_prepared, rank=0, world=1)
    assert run.precision.enabled and isinstance(run.precision.scaler, paddle.amp.GradScaler)
    assert paddle.get_flags(["FLAGS_max_inplace_grad_add"])["FLAGS_max_inplace_grad_add"] == 8
    train_ops = decode_first(cfg.DataLoader.Train.dataset.transform_ops)
    images, labels = next(iter_batches(digits_prepared, "train", train_ops, 8, seed=0))
    before = {k: v.numpy().copy() for k, v in run.model.state_dict().items()}
    loss, _ = forward_backward(run.model, run.criterion, run.precision, paddle.to_tensor(images),
                               paddle.to_tensor(labels))
    run.precision.step(run.optimizer)
    assert np.isfinite(float(loss))
    assert any(not np.array_equal(v.numpy(), before[k]) for k, v in run.model.state_dict().items())


def test_o2_decorates_after_the_float32_checkpoint_is_restored(digits_prepared, monkeypatch, tmp_path):
    """O2 casts weights to float16; a checkpoint's float32 weights do not load into those, so the restore must
    come first, and the decoration must keep float32 state dicts (PaddleClas-compatible checkpoints)."""
    import ppipe.train.loop as loop

    monkeypatch.setattr("ppipe.train.loop.on_gpu", lambda: True)
    cfg = _gpu_cfg("AMP.level=O2")
    first = loop.build_worker_run(cfg, digits_prepared, rank=0, world=1)
    save_checkpoint(str(tmp_path), first.model, first.optimizer, first.lr, first.state, amp=first.precision)

    events = []
    real_load, real_decorate = loop.load_checkpoint, paddle.amp.decorate
    monkeypatch.setattr(loop, "load_checkpoint", lambda *a, **k: events.append("restore") or real_load(*a, **k))

    def decorate(**kw):
        events.append(("decorate", kw["level"], kw["save_dtype"]))
        return real_decorate(**kw)

    monkeypatch.setattr(paddle.amp, "decorate", decorate)
    loop.build_worker_run(cfg, digits_prepared, rank=0, world=1, checkpoint_dir=str(tmp_path))
    assert events == ["restore", ("decorate", "O2", "float32")]


# --- loss-scaler state through a checkpoint -----------------------------------------------------------------------

def _changed_scaler_state(precision: MixedPrecision) -> None:
    """Drive the dynamic loss scale as training would: one overflow halves it, finite steps count up."""
    scaler = precision.scaler
    scaler._cache_found_inf = True
    scaler.update()
    scaler._cache_found_inf = False
    for _ in range(3):
        scaler.update()


def test_paddle_grad_scaler_crashes_on_its_first_overflow_which_ours_survives(enabled_scaler_on_cpu):
    """Why ppipe has its own GradScaler: Paddle 3.3.1's formats float() of a [1]-shaped tensor when it lowers the
    scale, which NumPy >= 2.4 refuses. Should this stop failing, ppipe.train.amp.GradScaler can go."""
    if np.lib.NumpyVersion(np.__version__) < "2.4.0":
        pytest.skip("NumPy < 2.4 still converts [1]-shaped arrays to float")
    paddles = paddle.amp.GradScaler(init_loss_scaling=1024.0)
    paddles._cache_found_inf = True
    with pytest.raises(TypeError, match="0-dimensional"):
        paddles.update()
    ours = amp.GradScaler(init_loss_scaling=1024.0, incr_every_n_steps=2)
    ours._cache_found_inf = True
    ours.update()
    assert ours._scale.item() == 512.0 and ours._decr_count == 0
    ours._cache_found_inf = False
    ours.update()
    ours.update()
    assert ours._scale.item() == 1024.0 and ours._incr_count == 0  # doubled after 2 finite steps


def test_loss_scaler_state_round_trips_through_a_checkpoint(enabled_scaler_on_cpu, tmp_path):
    cfg = AMPSection(use_amp=True, scale_loss=65536.0, use_dynamic_loss_scaling=True)
    model = paddle.nn.Linear(4, 2)
    optimizer = paddle.optimizer.Momentum(learning_rate=0.1, parameters=model.parameters())
    lr = paddle.optimizer.lr.StepDecay(0.1, step_size=1)
    trained = MixedPrecision(cfg, gpu=True)
    assert trained.scaler.is_enable()
    _changed_scaler_state(trained)
    saved = trained.state_dict()
    assert float(saved["scale"][0]) == 32768.0 and saved["incr_count"] == 3 and saved["decr_count"] == 0
    save_checkpoint(str(tmp_path), model, optimizer, lr, TrainState(epochs_completed=1), amp=trained)

    resumed = MixedPrecision(cfg, gpu=True)
    assert float(resumed.state_dict()["scale"][0]) == 65536.0
    load_checkpoint(str(tmp_path), model, optimizer, lr, amp=resumed)
    restored = resumed.state_dict()
    assert restored.keys() == saved.keys()
    for key, value in saved.items():
        np.testing.assert_array_equal(np.asarray(restored[key]), np.asarray(value), err_msg=key)


def test_resuming_with_amp_from_a_float32_checkpoint_keeps_the_configured_scale(enabled_scaler_on_cpu, tmp_path,
                                                                               caplog):
    model = paddle.nn.Linear(4, 2)
    optimizer = paddle.optimizer.Momentum(learning_rate=0.1, parameters=model.parameters())
    lr = paddle.optimizer.lr.StepDecay(0.1, step_size=1)
    save_checkpoint(str(tmp_path), model, optimizer, lr, TrainState())  # no AMP
    precision = MixedPrecision(AMPSection(use_amp=True, scale_loss=1024.0, use_dynamic_loss_scaling=True), gpu=True)
    with caplog.at_level(logging.WARNING, logger="ppipe.train"):
        load_checkpoint(str(tmp_path), model, optimizer, lr, amp=precision)
    assert float(precision.state_dict()["scale"][0]) == 1024.0
    assert "no loss-scaler state" in caplog.text


# --- evaluation and sync BN ---------------------------------------------------------------------------------------

def test_evaluation_runs_the_model_as_is_without_amp_and_in_float32_outputs_with_it(enabled_scaler_on_cpu):
    model = paddle.nn.Linear(3, 2)
    assert for_evaluation(model, MixedPrecision(AMPSection(), gpu=False)) is model
    wrapped = for_evaluation(model, MixedPrecision(AMPSection(use_amp=True, level="O2"), gpu=True))
    wrapped.eval()
    assert not model.training  # eval()/train() reach the model, as evaluation's mode switches must
    out = wrapped(paddle.randn([1, 3]))
    assert out.dtype == paddle.float32 and out.shape == [1, 2]


def _bn_net():
    return paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.ReLU(),
                                paddle.nn.Sequential(paddle.nn.Conv2D(4, 4, 1), paddle.nn.BatchNorm2D(4)))


def test_sync_bn_converts_every_batchnorm_on_gpus_with_several_workers_keeping_the_weights():
    net = _bn_net()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    converted = sync_batchnorm(net, True, gpu=True, world=2)
    layers = converted.sublayers()
    assert sum(isinstance(layer, paddle.nn.SyncBatchNorm) for layer in layers) == 2
    assert not any(type(layer) is paddle.nn.BatchNorm2D for layer in layers)
    after = converted.state_dict()
    assert list(after) == list(before)  # same keys: checkpoints stay PaddleClas files
    for key, value in before.items():
        np.testing.assert_array_equal(after[key].numpy(), value)


def test_sync_bn_is_skipped_on_cpu_with_a_log_line_and_with_one_worker(caplog):
    net = _bn_net()
    with caplog.at_level(logging.INFO, logger="ppipe.train"):
        assert sync_batchnorm(net, True, gpu=False, world=2) is net
        assert "Arch.use_sync_bn: SyncBatchNorm needs GPUs" in caplog.text
        assert sync_batchnorm(net, True, gpu=True, world=1) is net
    assert sync_batchnorm(net, False, gpu=True, world=2) is net
    assert not any(isinstance(layer, paddle.nn.SyncBatchNorm) for layer in net.sublayers())
