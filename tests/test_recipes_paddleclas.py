"""PaddleClas's own recipes as users bring them (`-o Global.device=cpu` to try a GPU recipe on a CPU machine): every
`Distillation/` recipe either loads and trains, or fails at load naming the piece ppipe lacks.

The YAMLs under tests/data/paddleclas_configs are PaddleClas's (Apache-2.0), copied unchanged from its
`ppcls/configs/ImageNet/` (the `paddleclas` wheel does not ship them). Teachers' `pretrained: True` would download
weights, which ppipe never does: the tests set it to False.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ppipe.config import ConfigError, load_config
from tests.test_distill_afd import AFD_RECIPE, afd_shape_overrides

CONFIGS = Path(__file__).resolve().parent / "data" / "paddleclas_configs"
DISTILLATION = CONFIGS / "Distillation"

# Recipe -> None (loads and trains) or the piece its load error names. The one list of which recipes load.
EXPECTED = {
    "PPLCNet_x1_0_ssld.yaml": None,
    "PPLCNet_x2_5_dml.yaml": None,
    "PPLCNet_x2_5_ssld.yaml": None,
    "PPLCNet_x2_5_udml.yaml": None,  # return_patterns + DistillationDistanceLoss on a feature map
    "mv3_large_x1_0_distill_mv3_small_x1_0.yaml": None,
    "resnet34_distill_resnet18_dist.yaml": None,
    "resnet34_distill_resnet18_dkd.yaml": None,  # its Optimizer.lr.step_each_epoch is accepted and not used
    "resnet34_distill_resnet18_skd.yaml": None,
    "resnet34_distill_resnet18_wsl.yaml": None,
    # DistillationPairLoss: MGD's and PEFD's losses train layers of their own, with the model
    "resnet34_distill_resnet18_mgd.yaml": None,
    "resnet34_distill_resnet18_pefd.yaml": None,
    # AttentionModel (a zoo backbone and linear transforms of its maps), DistillationKLDivLoss, AFDLoss
    "resnet34_distill_resnet18_afd.yaml": None,
    "res2net200_vd_distill_pphgnet_base.yaml": r"PPHGNet_base",  # not a zoo architecture
}
LOADING = sorted(name for name, piece in EXPECTED.items() if piece is None)


def _no_downloads(models: list, prefix: str) -> list[str]:
    """`pretrained=False` overrides for the models of a `models` list that would download weights, an
    AttentionModel's (AFD's) own models included."""
    overrides = []
    for i, entry in enumerate(models):
        for name, spec in entry.items():
            if spec.get("pretrained") not in (None, False):
                overrides.append(f"{prefix}.{i}.{name}.pretrained=False")
            overrides += _no_downloads(spec.get("models", []), f"{prefix}.{i}.{name}.models")
    return overrides


def _user_overrides(path: Path) -> list[str]:
    """What a user trying the recipe on a CPU machine adds: the CPU, and no downloaded teacher weights."""
    return ["Global.device=cpu", *_no_downloads(yaml.safe_load(path.read_text())["Arch"].get("models", []),
                                                "Arch.models")]


def test_every_distillation_recipe_of_paddleclas_is_covered():
    assert sorted(p.name for p in DISTILLATION.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_distillation_recipe_loads_or_names_the_missing_piece(name):
    path = DISTILLATION / name
    piece = EXPECTED[name]
    if piece is None:
        cfg = load_config(path, _user_overrides(path))
        assert cfg.Arch.name == "DistillationModel" and cfg.Global.device == "cpu"
    else:
        with pytest.raises(ConfigError, match=piece):
            load_config(path, _user_overrides(path))


def _tiny(path: Path) -> list[str]:
    """The recipe at digits size: 10 classes, 16x16 crops, a batch of 8, one epoch."""
    return [*_user_overrides(path), "Arch.class_num=10", "Global.epochs=1", "Global.image_shape=[3, 16, 16]",
            "DataLoader.Train.sampler.batch_size=8"]


@pytest.mark.slow
@pytest.mark.parametrize("name", LOADING)
def test_loading_distillation_recipe_trains_one_step_on_the_digits(name, digits_prepared):
    import paddle

    from ppipe.train.loop import build_worker_run, train_step
    from ppipe.data import iter_batches
    from ppipe.evaluate import decode_first

    path = DISTILLATION / name
    data = yaml.safe_load(path.read_text())
    models = data["Arch"]["models"]
    overrides = _tiny(path) + [f"Arch.models.{i}.{k}.class_num=10" for i, m in enumerate(models) for k in m]
    crop = [i for i, op in enumerate(data["DataLoader"]["Train"]["dataset"]["transform_ops"])
            if "RandCropImage" in op]
    overrides += [f"DataLoader.Train.dataset.transform_ops.{i}.RandCropImage.size=16" for i in crop]
    if name == AFD_RECIPE.name:  # its feature-map shapes are given for 224x224 images
        overrides += afd_shape_overrides(16)
    cfg = load_config(path, overrides)
    paddle.set_device("cpu")
    run = build_worker_run(cfg, digits_prepared, rank=0, world=1)
    train_cfg = cfg.DataLoader.Train
    images, labels = next(iter(iter_batches(
        digits_prepared, "train", decode_first(train_cfg.dataset.transform_ops), 8, rank=0, world_size=1, epoch=0,
        shuffle=False, seed=0, drop_last=True, pad=True, num_workers=0,
        batch_transform_ops=train_cfg.dataset.batch_transform_ops, class_num=10)))
    loss, _, stepped = train_step(run, 0, images, labels, 1)
    assert stepped and run.state.global_step == 1 and float(loss) == float(loss)  # a finite loss


def test_gpu_recipe_with_amp_loads_on_a_cpu_machine_to_train_in_float32():
    """SwinTransformer_tiny enables AMP; `-o Global.device=cpu` used to be refused."""
    cfg = load_config(CONFIGS / "SwinTransformer" / "SwinTransformer_tiny_patch4_window7_224.yaml",
                      ["Global.device=cpu"])
    assert cfg.AMP.use_amp and cfg.Global.device == "cpu"
    from ppipe.train.amp import MixedPrecision

    assert MixedPrecision(cfg.AMP, gpu=False).precision == "float32"
