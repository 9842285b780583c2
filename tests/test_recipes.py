"""The zoo's training recipes (configs/ImageNet/<Family>/<Model>.yaml): one per architecture, each loading through
ppipe's loader, equal to what configs/ImageNet/make_recipes.py generates, carrying PaddleClas's published facts,
and able to train: one real optimizer step from a recipe for a CNN, a mobile net and a transformer."""

import dataclasses
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

from ppipe.config import load_config
from ppipe.config.schema import ArchSection
from ppipe.models import get_spec, list_models

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "configs" / "ImageNet"


def _generator():
    spec = importlib.util.spec_from_file_location("make_recipes", RECIPES / "make_recipes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _recipe(name: str) -> Path:
    return RECIPES / get_spec(name).family / f"{name}.yaml"


def _data_override(prepared: str) -> list[str]:
    return [f"DataLoader.Train.dataset.path={prepared}"]


def _op(ops: list, name: str) -> dict:
    found = [item[name] for item in ops if isinstance(item, dict) and name in item]
    assert len(found) == 1, f"expected one {name} in {ops}"
    return found[0]


# ------------------------------------------------------------------------------------------- (a) one per arch

def test_every_architecture_has_exactly_one_recipe_and_every_recipe_names_a_registered_one():
    by_arch: dict[str, list[Path]] = {}
    for path in sorted(RECIPES.glob("*/*.yaml")):
        arch = yaml.safe_load(path.read_text())["Arch"]["name"]
        by_arch.setdefault(arch, []).append(path)
    zoo = set(list_models())
    assert not set(by_arch) - zoo, f"recipes for unregistered architectures: {sorted(set(by_arch) - zoo)}"
    assert not zoo - set(by_arch), f"architectures without a recipe: {sorted(zoo - set(by_arch))}"
    assert {arch: paths for arch, paths in by_arch.items() if len(paths) > 1} == {}
    # and each lives where a PaddleClas user looks for it: <Family>/<Model>.yaml
    assert {arch: paths[0] for arch, paths in by_arch.items()} == {name: _recipe(name) for name in zoo}


# ------------------------------------------------------------------------------------- (b) loads and validates

@pytest.mark.parametrize("name", list_models())
def test_recipe_loads_and_validates_with_the_prepared_data_given(name, digits_prepared):
    from ppipe.data import resolve_prepared

    path = _recipe(name)
    cfg = load_config(path, _data_override(digits_prepared))
    assert cfg.Arch.name == name
    assert resolve_prepared(cfg) == digits_prepared                   # -o DataLoader.Train.dataset.path=...
    assert resolve_prepared(load_config(path), digits_prepared) == digits_prepared  # ppipe train --data ...
    # Tuned for 8 GPUs, and says so: ppipe scales the learning rate when it runs on another number of workers.
    assert cfg.Global.recipe_workers == cfg.Ray.num_workers == 8 and cfg.Ray.use_gpu
    # The evaluation crop is what the model is exported at (RegNet's published recipe trains at 224, evaluates 256).
    size = cfg.Global.image_shape[1]
    assert cfg.Global.image_shape == [3, size, size]
    assert _op(cfg.DataLoader.Eval.dataset.transform_ops, "CropImage")["size"] == size
    assert size == get_spec(name).input_size or name == "RegNetX_4GF"


# Arch keys that are settings of the run (ArchSection's fields), not constructor arguments.
ARCH_SETTINGS = {f.name for f in dataclasses.fields(ArchSection)} - {"kwargs"}


def _smallest_with_each_arch_arguments() -> list[tuple[str, dict]]:
    """One architecture per (family, set of extra Arch keys) in the recipes: the smallest."""
    chosen: dict[tuple, tuple[str, dict]] = {}
    for name in sorted(list_models(), key=lambda n: get_spec(n).params_m):
        if not _recipe(name).is_file():  # reported by the one-recipe-per-architecture test, not at collection
            continue
        arch = yaml.safe_load(_recipe(name).read_text())["Arch"]
        extra = {k: v for k, v in arch.items() if k not in ARCH_SETTINGS}
        if extra:
            chosen.setdefault((get_spec(name).family, tuple(sorted(extra))), (name, extra))
    return list(chosen.values())


ARCH_ARGUMENT_CASES = _smallest_with_each_arch_arguments()


@pytest.mark.parametrize("name,extra", ARCH_ARGUMENT_CASES, ids=[name for name, _ in ARCH_ARGUMENT_CASES])
def test_recipe_arch_arguments_are_ones_the_model_takes(name, extra):
    # The loader checks extra Arch keys against the model when it loads the recipe; this builds the model for real.
    from ppipe.models import create_model

    assert load_config(_recipe(name)).Arch.kwargs == extra
    model = create_model(name, num_classes=10, **extra)
    assert model.num_classes == 10


# ------------------------------------------------------------------------------------------------ (c) no drift

def test_committed_recipes_are_exactly_the_generators_output_and_drift_is_caught(tmp_path):
    make_recipes = _generator()
    stale = tmp_path / "ResNet" / "ResNet9000.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("Arch: {name: ResNet9000}\n")
    written = make_recipes.write_recipes(tmp_path)
    assert not stale.exists(), "a recipe for a model the zoo does not have is removed"
    assert len(written) == len(list_models())
    committed = sorted(p.relative_to(RECIPES).as_posix() for p in RECIPES.glob("*/*.yaml"))
    assert committed == sorted(written)
    drifted = [rel for rel in written if (tmp_path / rel).read_text() != (RECIPES / rel).read_text()]
    assert drifted == [], "regenerate: .venv/bin/python configs/ImageNet/make_recipes.py"
    # `make_recipes.py --check` names an edited recipe and one no model has
    edited = tmp_path / "ResNet" / "ResNet50_vd.yaml"
    edited.write_text(edited.read_text().replace("epochs: 200", "epochs: 100"))
    stale.write_text("Arch: {name: ResNet9000}\n")
    assert make_recipes.check(tmp_path) == ["ResNet/ResNet50_vd.yaml", "ResNet/ResNet9000.yaml"]


# ---------------------------------------------------------------------------------- (d) the published facts

# PaddleClas's published recipes (ppcls/configs/ImageNet/<Family>/<Model>.yaml), read by hand: optimizer, base
# learning rate (Piecewise: its first value), weight decay (L2 coeff, or AdamW's), epochs, per-GPU batch, image
# size, label smoothing epsilon (None: none).
PUBLISHED = {
    "ResNet50": ("Momentum", 0.1, 1e-4, 120, 64, 224, None),
    "ResNet50_vd": ("Momentum", 0.1, 7e-5, 200, 64, 224, 0.1),
    "ResNeXt152_64x4d": ("Momentum", 0.1, 1.8e-4, 120, 64, 224, None),
    "AlexNet": ("Momentum", 0.01, 1e-4, 120, 64, 224, None),
    "VGG16": ("Momentum", 0.01, 4e-4, 90, 64, 224, None),
    "InceptionV3": ("Momentum", 0.045, 1e-4, 200, 64, 299, 0.1),
    "EfficientNetB3": ("RMSProp", 0.032, 1e-5, 360, 128, 300, 0.1),
    "MobileNetV3_large_x1_0": ("Momentum", 0.65, 2e-5, 360, 256, 224, 0.1),
    "PPLCNet_x1_0": ("Momentum", 0.8, 3e-5, 360, 512, 224, 0.1),
    "ShuffleNetV2_x1_0": ("Momentum", 0.5, 4e-5, 240, 256, 224, None),
    "MobileViT_S": ("AdamW", 0.002, 0.01, 300, 128, 256, 0.1),
    "DeiT_small_patch16_224": ("AdamW", 2e-3, 0.05, 300, 256, 224, 0.1),
    "SwinTransformer_tiny_patch4_window7_224": ("AdamW", 1e-3, 0.05, 300, 128, 224, 0.1),
    "SwinTransformer_base_patch4_window12_384": ("AdamW", 1e-3, 0.05, 300, 128, 384, 0.1),
    "CSWinTransformer_large_384": ("AdamW", 6.25e-5, 0.05, 300, 8, 384, 0.1),
    "PVT_V2_B2": ("AdamW", 1e-3, 0.05, 300, 128, 224, 0.1),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_recipe_carries_the_published_hyperparameters(name):
    optimizer, lr, decay, epochs, batch, size, smoothing = PUBLISHED[name]
    cfg = load_config(_recipe(name))
    opt = cfg.Optimizer
    assert opt.name == optimizer
    assert (opt.lr.values[0] if opt.lr.name == "Piecewise" else opt.lr.learning_rate) == pytest.approx(lr)
    assert (opt.weight_decay if opt.name == "AdamW" else opt.regularizer.coeff) == pytest.approx(decay)
    assert cfg.Global.epochs == epochs
    assert cfg.DataLoader.Train.sampler.batch_size == batch
    assert cfg.Global.image_shape == [3, size, size]
    assert _op(cfg.DataLoader.Train.dataset.transform_ops, "RandCropImage")["size"] == size
    (loss, params), = cfg.Loss.Train[0].items()
    assert loss == "CELoss" and params.get("epsilon") == smoothing


def test_schedules_and_augmentation_follow_the_published_recipes():
    r50 = load_config(_recipe("ResNet50"))
    assert (r50.Optimizer.lr.name, r50.Optimizer.lr.decay_epochs) == ("Piecewise", [30, 60, 90])
    assert r50.Optimizer.lr.values == pytest.approx([0.1, 0.01, 0.001, 0.0001])
    vd = load_config(_recipe("ResNet50_vd"))
    assert vd.Optimizer.lr.name == "Cosine" and vd.Optimizer.lr.warmup_epoch == 0
    assert vd.DataLoader.Train.dataset.batch_transform_ops == [{"MixupOperator": {"alpha": 0.2}}]
    assert vd.Metric.Train == []  # no training accuracy against Mixup's soft labels, as published

    mnv3 = load_config(_recipe("MobileNetV3_large_x1_0"))
    assert mnv3.Optimizer.lr.warmup_epoch == 5
    assert "AutoAugment" in [next(iter(op)) for op in mnv3.DataLoader.Train.dataset.transform_ops]

    deit = load_config(_recipe("DeiT_small_patch16_224"))
    lr = deit.Optimizer.lr
    assert (lr.warmup_epoch, lr.eta_min, lr.warmup_start_lr) == (5, pytest.approx(2e-5), pytest.approx(2e-6))
    assert deit.Optimizer.no_weight_decay_name == "norm cls_token pos_embed dist_token"
    assert deit.Optimizer.one_dim_param_no_weight_decay
    assert deit.Arch.kwargs == {"drop_path_rate": 0.1, "drop_rate": 0.0}
    ops = deit.DataLoader.Train.dataset.transform_ops
    assert _op(ops, "TimmAutoAugment")["config_str"] == "rand-m9-mstd0.5-inc1"
    assert _op(ops, "RandomErasing")["EPSILON"] == 0.25
    assert _op(ops, "RandCropImage")["interpolation"] == "bicubic"
    assert deit.DataLoader.Train.dataset.batch_transform_ops == [
        {"OpSampler": {"MixupOperator": {"alpha": 0.8, "prob": 0.5}, "CutmixOperator": {"alpha": 1.0, "prob": 0.5}}}]

    swin_t = load_config(_recipe("SwinTransformer_tiny_patch4_window7_224"))
    assert (swin_t.AMP.use_amp, swin_t.AMP.level) == (True, "O2")
    assert swin_t.Optimizer.lr.warmup_epoch == 20
    swin_384 = load_config(_recipe("SwinTransformer_base_patch4_window12_384"))
    assert _op(swin_384.DataLoader.Eval.dataset.transform_ops, "ResizeImage")["resize_short"] == 438

    b3 = load_config(_recipe("EfficientNetB3"))
    assert (b3.Optimizer.rho, b3.Optimizer.epsilon, b3.Optimizer.momentum) == (0.9, 0.001, 0.9)
    assert _op(b3.DataLoader.Eval.dataset.transform_ops, "ResizeImage")["resize_short"] == 332

    googlenet = load_config(_recipe("GoogLeNet"))
    assert [next(iter(term)) for term in googlenet.Loss.Train] == ["GoogLeNetLoss"]

    regnet = load_config(_recipe("RegNetX_4GF"))
    assert _op(regnet.DataLoader.Train.dataset.transform_ops, "RandCropImage")["size"] == 224
    assert _op(regnet.DataLoader.Eval.dataset.transform_ops, "CropImage")["size"] == 256


def test_published_settings_are_carried_and_pieces_ppipe_cannot_run_yet_are_named_not_dropped_silently():
    for name in ("PVT_V2_B3", "PVT_V2_B4", "PVT_V2_B5"):  # PVTv2's gradient clipping, as published
        assert load_config(_recipe(name)).Optimizer.clip_grad == 1.0
        assert "not supported yet" not in _recipe(name).read_text()
    assert load_config(_recipe("PVT_V2_B2")).Optimizer.clip_grad is None
    for name in list_models("SwinTransformer_*"):  # PaddleClas's fused-kernel switches, off as published
        arch = yaml.safe_load(_recipe(name).read_text())["Arch"]
        assert (arch["use_fused_attn"], arch["use_fused_linear"]) == (False, False)
        assert load_config(_recipe(name)).Arch.kwargs == {}
    googlenet = load_config(_recipe("GoogLeNet"))  # PaddleClas's metric for GoogLeNet's heads, as published
    assert googlenet.Metric.Train == googlenet.Metric.Eval == [{"GoogLeNetTopkAcc": {"topk": [1, 5]}}]
    assert "not supported yet" not in _recipe("GoogLeNet").read_text()
    for name in ("ResNet50", "SwinTransformer_base_patch4_window7_224", "MobileNetV3_small_x1_0"):
        assert "Arch.pretrained: True" in _recipe(name).read_text()
    stand_in = _recipe("ResNet50_vc").read_text().splitlines()
    assert "ppcls/configs/ImageNet/ResNet/ResNet50.yaml" in stand_in[1]
    assert any("publishes no recipe for this model" in line for line in stand_in[:6])


# --------------------------------------------------------------------------------------- (e) one real step

SMOKE = ["ResNet50_vd", "MobileNetV3_large_x1_0", "DeiT_tiny_patch16_224"]  # CNN, mobile net, transformer


@pytest.mark.parametrize("name", SMOKE)
def test_recipe_trains_one_step_through_ppipes_builders(name, digits_prepared):
    from ppipe.data import iter_batches
    from ppipe.evaluate import decode_first
    from ppipe.build import build_model
    from ppipe.losses import CombinedLoss
    from ppipe.optim import build_lr, build_optimizer

    cfg = load_config(_recipe(name), _data_override(digits_prepared))
    train = cfg.DataLoader.Train
    size = cfg.Global.image_shape[1]
    # Two of the prepared images through the recipe's own per-sample and batch operators.
    images, labels = next(iter_batches(cfg.DataLoader.Train.dataset.path, "train",
                                       decode_first(train.dataset.transform_ops), 2, seed=0,
                                       batch_transform_ops=train.dataset.batch_transform_ops,
                                       class_num=cfg.num_classes))
    assert images.shape == (2, 3, size, size)
    if train.dataset.batch_transform_ops:
        assert labels.shape == (2, cfg.num_classes)  # Mixup/CutMix: soft targets over the recipe's 1000 classes

    paddle.seed(0)
    model = build_model(cfg)
    lr = build_lr(cfg.Optimizer.lr, cfg.Global.epochs, steps_per_epoch=1)
    optimizer = build_optimizer(cfg.Optimizer, model, lr)
    for _ in range(cfg.Optimizer.lr.warmup_epoch):  # past the warm-up (which starts near 0): the recipe's rate
        lr.step()
    assert optimizer.get_lr() == pytest.approx(cfg.Optimizer.lr.learning_rate)
    criterion = CombinedLoss(cfg.Loss.Train, "Loss.Train")
    model.train()
    weight = next(p for p in model.parameters() if len(p.shape) > 1)
    before = weight.numpy().copy()
    loss = criterion(model(paddle.to_tensor(images)), paddle.to_tensor(labels))
    loss.backward()
    optimizer.step()
    optimizer.clear_grad()
    lr.step()
    assert math.isfinite(float(loss)) and float(loss) > 0
    assert not np.allclose(weight.numpy(), before), "the optimizer step left the weights unchanged"
