"""ppipe's ImageNet-1k training recipes for the whole zoo, held as data; writes configs/ImageNet/<Family>/<Model>.yaml.

Each family has one base recipe: the facts of PaddleClas's published recipe for it (ppcls/configs/ImageNet/<Family>/
<Model>.yaml: optimizer, schedule, weight decay, epochs, per-GPU batch on 8 GPUs, image size, augmentation, label
smoothing, Mixup/CutMix, ...). Models whose published recipe differs from their family's get overrides. The YAMLs are
PaddleClas-shaped and generated, never edited by hand: change the tables here, then run

    .venv/bin/python configs/ImageNet/make_recipes.py            # (re)write every recipe
    .venv/bin/python configs/ImageNet/make_recipes.py --check    # exit 1 if a committed recipe differs

tests/test_recipes.py checks that the committed files are this script's output.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
PADDLECLAS_DIR = "ppcls/configs/ImageNet"
GPUS = 8  # PaddleClas's ImageNet recipes are tuned for 8 GPUs unless they say otherwise; none of these does

IMAGENET_NORM = {"scale": "1.0/255.0", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "order": ""}
HALF_NORM = {"scale": "1.0/255.0", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "order": ""}
# RedNet's recipe normalizes 0..255 pixels directly (same arithmetic as IMAGENET_NORM, in mmcv's form).
PIXEL_NORM = {"scale": 1.0, "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "order": ""}
UNIT_NORM = {"scale": "1.0/255.0", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "order": ""}
BICUBIC_PIL = {"interpolation": "bicubic", "backend": "pil"}
BILINEAR_PIL = {"interpolation": "bilinear", "backend": "pil"}
RANDOM_ERASING = {"EPSILON": 0.25, "sl": 0.02, "sh": "1.0/3.0", "r1": 0.3, "attempt": 10, "use_log_aspect": True,
                  "mode": "pixel"}
MIXUP = ({"MixupOperator": {"alpha": 0.2}},)
MIXUP_OR_CUTMIX = ({"OpSampler": {"MixupOperator": {"alpha": 0.8, "prob": 0.5},
                                  "CutmixOperator": {"alpha": 1.0, "prob": 0.5}}},)


def cosine(learning_rate: float, *, eta_min: float | None = None, warmup_epoch: int | None = None,
           warmup_start_lr: float | None = None) -> dict:
    given = {"eta_min": eta_min, "warmup_epoch": warmup_epoch, "warmup_start_lr": warmup_start_lr}
    return {"name": "Cosine", "learning_rate": learning_rate, **{k: v for k, v in given.items() if v is not None}}


def piecewise(values: list[float], decay_epochs=(30, 60, 90), *, with_learning_rate: bool = True) -> dict:
    head = {"learning_rate": values[0]} if with_learning_rate else {}
    return {"name": "Piecewise", **head, "decay_epochs": list(decay_epochs), "values": list(values)}


def momentum(lr: dict, l2: float) -> dict:
    return {"name": "Momentum", "momentum": 0.9, "lr": lr, "regularizer": {"name": "L2", "coeff": l2}}


def adamw(lr: dict, weight_decay: float, no_weight_decay_name: str) -> dict:
    return {"name": "AdamW", "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weight_decay": weight_decay,
            "no_weight_decay_name": no_weight_decay_name, "one_dim_param_no_weight_decay": True, "lr": lr}


@dataclass(frozen=True)
class Recipe:
    """The facts of one published recipe; `render` turns them into PaddleClas's YAML sections."""

    epochs: int
    optimizer: dict
    batch_size: int                       # per GPU
    eval_batch_size: int = 64
    size: int = 224                       # Global.image_shape and the evaluation crop
    train_size: int | None = None         # the training crop, where it differs from `size`
    eval_resize: int = 256                # short side before the evaluation crop
    train_interp: dict = field(default_factory=dict)   # RandCropImage's resize (default: OpenCV bilinear)
    eval_interp: dict = field(default_factory=dict)    # ResizeImage's
    augment: str | None = None            # "AutoAugment" or "TimmAutoAugment" (RandAugment rand-m9-mstd0.5-inc1)
    erasing: bool = False                 # RandomErasing after NormalizeImage
    batch_ops: tuple = ()                 # Mixup / CutMix
    normalize: dict = field(default_factory=lambda: IMAGENET_NORM)
    eval_to_rgb: bool = True              # DecodeImage's channel order for evaluation (training decodes to RGB)
    label_smoothing: float | None = None
    loss: str = "CELoss"
    metric: str = "TopkAcc"               # GoogLeNetTopkAcc scores the main of GoogLeNet's heads
    train_metric: bool = True             # PaddleClas leaves training accuracy out where Mixup makes labels soft
    arch: dict = field(default_factory=dict)   # further Arch keys (constructor arguments: drop_path_rate, ...)
    loader_workers: int = 4               # decode processes per GPU worker, training
    amp: dict | None = None
    gpus: int = GPUS
    source: str | None = None             # the published recipe followed, where it is not <Family>/<Model>.yaml
    header: tuple[str, ...] = ()          # extra lines for the file's header comment
    notes: tuple[tuple[tuple[str, ...], str], ...] = ()  # (key path, comment written above that key)


def derive(base: Recipe, *, lr: float | None = None, l2: float | None = None, schedule: dict | None = None,
           clip_grad: float | None = None, **fields: Any) -> Recipe:
    """`base` with another learning rate, L2 coefficient, schedule or gradient clipping (the gradients' global norm),
    and any other fields replaced."""
    opt = base.optimizer
    if schedule is not None:
        opt = {**opt, "lr": schedule}
    if lr is not None:
        opt = {**opt, "lr": {**opt["lr"], "learning_rate": lr}}
    if l2 is not None:
        opt = {**opt, "regularizer": {"name": "L2", "coeff": l2}}
    if clip_grad is not None:  # where PaddleClas's recipes write it: after the weight decay
        items = list(opt.items())
        at = [k for k, _ in items].index("weight_decay") + 1
        opt = dict(items[:at] + [("clip_grad", clip_grad)] + items[at:])
    return replace(base, optimizer=opt, **fields)


# ----------------------------------------------------------------------------------------------- shared recipes

# ResNet's original schedule, PaddleClas's recipe for the CNNs it did not tune further: 120 epochs, lr / 10 at
# epochs 30, 60 and 90, no label smoothing.
STEP_120 = Recipe(epochs=120, batch_size=64, optimizer=momentum(piecewise([0.1, 0.01, 0.001, 0.0001]), l2=1e-4))
# PaddleClas's "vd" recipe (He et al., 2019, Bag of Tricks): 200 epochs of cosine decay, label smoothing, Mixup.
COSINE_200_MIXUP = Recipe(epochs=200, batch_size=64, optimizer=momentum(cosine(0.1), l2=1e-4), label_smoothing=0.1,
                          batch_ops=MIXUP, train_metric=False)
# PaddleClas's recipe for its mobile nets: 360 epochs, 8 x 512 images, cosine after 5 warm-up epochs.
MOBILE_360 = Recipe(epochs=360, batch_size=512, optimizer=momentum(cosine(0.8, warmup_epoch=5), l2=3e-5),
                    label_smoothing=0.1)


def deit_style(optimizer: dict, *, batch_size: int, eval_resize: int = 256, eval_batch_size: int = 128,
               **fields: Any) -> Recipe:
    """DeiT's recipe (Touvron et al., 2021), which PaddleClas uses for its vision transformers: AdamW for 300
    epochs, RandAugment, random erasing, Mixup or CutMix, label smoothing, bicubic resizing."""
    return Recipe(epochs=300, optimizer=optimizer, batch_size=batch_size, eval_batch_size=eval_batch_size,
                  eval_resize=eval_resize, train_interp=BICUBIC_PIL, eval_interp=BICUBIC_PIL,
                  augment="TimmAutoAugment", erasing=True, batch_ops=MIXUP_OR_CUTMIX, label_smoothing=0.1,
                  train_metric=False, **fields)


# ------------------------------------------------------------------------------------------ one per family

FAMILIES: dict[str, Recipe] = {
    "AlexNet": derive(STEP_120, schedule=piecewise([0.01, 0.001, 0.0001, 0.00001], with_learning_rate=False)),
    "CSWinTransformer": deit_style(
        adamw(cosine(2.5e-4, eta_min=2.5e-6, warmup_epoch=20, warmup_start_lr=2.5e-7), 0.05,
              "pos_embed cls_token .bias norm"), batch_size=32, eval_resize=248),
    "DLA": STEP_120,
    "DPN": COSINE_200_MIXUP,
    "DarkNet": replace(COSINE_200_MIXUP, size=256, eval_resize=292),
    "DeiT": deit_style(
        adamw(cosine(2e-3, eta_min=2e-5, warmup_epoch=5, warmup_start_lr=2e-6), 0.05,
              "norm cls_token pos_embed dist_token"),
        batch_size=256, eval_batch_size=256, arch={"drop_path_rate": 0.1, "drop_rate": 0.0}),
    "DenseNet": STEP_120,
    "ESNet": MOBILE_360,
    "EfficientNet": Recipe(
        epochs=360, batch_size=128, eval_batch_size=128, label_smoothing=0.1, augment="AutoAugment",
        optimizer={"name": "RMSProp", "momentum": 0.9, "rho": 0.9, "epsilon": 0.001,
                   "lr": cosine(0.032, warmup_epoch=5), "regularizer": {"name": "L2", "coeff": 1e-5}}),
    "GhostNet": derive(MOBILE_360, l2=4e-5),
    "HRNet": STEP_120,
    "HarDNet": STEP_120,
    "Inception": replace(derive(COSINE_200_MIXUP, lr=0.045), size=299, eval_resize=320),
    "LeViT": STEP_120,
    "MixNet": STEP_120,
    "MobileNetV1": derive(STEP_120, l2=3e-5),
    "MobileNetV2": Recipe(epochs=240, batch_size=64, optimizer=momentum(cosine(0.045), l2=4e-5)),
    "MobileNetV3": derive(MOBILE_360, lr=1.3, l2=2e-5),
    "MobileViT": Recipe(
        epochs=300, batch_size=128, size=256, eval_resize=292, train_interp=BILINEAR_PIL, eval_interp=BILINEAR_PIL,
        normalize=UNIT_NORM, eval_to_rgb=False, label_smoothing=0.1, loader_workers=8,
        optimizer=adamw(cosine(0.002, eta_min=0.0002, warmup_epoch=5, warmup_start_lr=0.0002), 0.01, ".bias norm"),
        notes=((("DataLoader", "Eval", "dataset", "transform_ops"),
                "PaddleClas's recipe decodes evaluation images to BGR (to_rgb: false) while training on RGB; kept "
                "as published."),)),
    "PPLCNet": MOBILE_360,
    "PVTV2": deit_style(
        adamw(cosine(1e-3, eta_min=1e-5, warmup_epoch=20, warmup_start_lr=1e-6), 0.05,
              "pos_embed1 pos_embed2 pos_embed3 pos_embed4 cls_token"),
        batch_size=128, arch={"drop_path_rate": 0.1, "drop_rate": 0.0}),
    "ReXNet": STEP_120,
    "RedNet": replace(STEP_120, normalize=PIXEL_NORM),
    # PaddleClas's RegNet recipe trains on 224 crops and evaluates 256 crops (and exports at 256).
    "RegNet": replace(STEP_120, size=256, train_size=224, eval_resize=256, eval_batch_size=128),
    "RepVGG": Recipe(epochs=120, batch_size=64, optimizer=momentum(cosine(0.1), l2=1e-4)),
    "Res2Net": COSINE_200_MIXUP,
    "ResNeSt": replace(derive(COSINE_200_MIXUP, l2=7e-5), epochs=300, augment="AutoAugment"),
    "ResNeXt": STEP_120,
    "ResNeXt101_wsl": STEP_120,
    "ResNet": STEP_120,
    "SENet": derive(COSINE_200_MIXUP, l2=7e-5),
    "ShuffleNet": Recipe(epochs=240, batch_size=256, optimizer=momentum(cosine(0.5, warmup_epoch=5), l2=4e-5)),
    "SqueezeNet": Recipe(epochs=120, batch_size=128, optimizer=momentum(cosine(0.02), l2=1e-4)),
    "SwinTransformer": deit_style(
        adamw(cosine(1e-3, eta_min=2e-5, warmup_epoch=20, warmup_start_lr=2e-6), 0.05,
              "absolute_pos_embed relative_position_bias_table .bias norm"), batch_size=128,
        arch={"use_fused_attn": False, "use_fused_linear": False}),
    "TNT": replace(STEP_120, normalize=HALF_NORM, eval_resize=248, eval_interp=BICUBIC_PIL, eval_batch_size=128),
    "Twins": deit_style(
        adamw(cosine(1e-3, eta_min=2e-5, warmup_epoch=5, warmup_start_lr=2e-6), 0.05,
              "norm cls_token proj.0.weight proj.1.weight proj.2.weight proj.3.weight pos_block"),
        batch_size=128, arch={"drop_rate": 0.0, "drop_path_rate": 0.3}),
    "VGG": Recipe(epochs=90, batch_size=64, optimizer=momentum(cosine(0.01), l2=4e-4)),
    "VisionTransformer": replace(STEP_120, normalize=HALF_NORM),
    "Xception": Recipe(epochs=120, batch_size=64, size=299, eval_resize=320, label_smoothing=0.1,
                       optimizer=momentum(cosine(0.045), l2=1e-4)),
}

# ------------------------------------------------------------------------------- models whose recipe differs

AT_384 = {"size": 384, "eval_resize": 438}
VIT_384 = {"size": 384, "eval_resize": 384}
VD = {"base": COSINE_200_MIXUP}
VD_L2_7E5 = {"base": COSINE_200_MIXUP, "l2": 7e-5}
# Recipes that start from PaddleClas's released weights (Arch.pretrained: True) are not training recipes.
FROM_SCRATCH = ((("Arch",), "PaddleClas's recipe also sets Arch.pretrained: True (start from its released "
                            "ImageNet weights); a recipe that trains the model starts from scratch, so it is left "
                            "out. Starting weights go in Global.pretrained_model."),)
# RepVGG's larger models train longer, with AutoAugment, Mixup and label smoothing (the paper's 200-epoch recipe).
REPVGG_LARGE = {"epochs": 200, "schedule": cosine(0.1, warmup_epoch=5), "augment": "AutoAugment", "batch_ops": MIXUP,
                "label_smoothing": 0.1}
PVT_CLIP_GRAD = ("The gradients' global norm is clipped at 1.0, as in PVTv2's own training (whai362/PVT "
                 "classification/configs/pvt_v2). PaddleClas's trainer hands clip_grad to its AdamW wrapper, which "
                 "drops it: PaddleClas itself trains these without clipping; ppipe clips as the recipe says.")
DISTILLED = ("PaddleClas's recipe for this distilled variant trains from labels alone (no teacher model): the "
             "model's two heads are averaged and learn from the labels.",)


def _stand_in(source: str, why: str) -> dict:
    return {"source": source, "header": (f"PaddleClas publishes no recipe for this model: {why}",)}


def _cswin(lr: float, batch_size: int, **fields: Any) -> dict:
    # CSWin's recipes keep eta_min = lr / 100 and warmup_start_lr = lr / 1000 as lr follows the batch size.
    return {"schedule": cosine(lr, eta_min=lr / 100, warmup_epoch=20, warmup_start_lr=lr / 1000),
            "batch_size": batch_size, **fields}


OVERRIDES: dict[str, dict[str, Any]] = {
    "CSWinTransformer_base_384": _cswin(1.25e-4, 16, size=384, eval_resize=384, eval_batch_size=64),
    "CSWinTransformer_large_384": _cswin(6.25e-5, 8, size=384, eval_resize=384, eval_batch_size=64),
    "CSWinTransformer_small_224": _cswin(5e-4, 64),
    "CSWinTransformer_tiny_224": _cswin(1e-3, 128),
    "DeiT_base_distilled_patch16_224": {"header": DISTILLED},
    "DeiT_base_distilled_patch16_384": {**AT_384, "header": DISTILLED},
    "DeiT_base_patch16_384": AT_384,
    "DeiT_small_distilled_patch16_224": {"header": DISTILLED},
    "DeiT_tiny_distilled_patch16_224": {"header": DISTILLED},
    "EfficientNetB0_small": _stand_in("EfficientNet/EfficientNetB0.yaml",
                                      "it follows EfficientNetB0's, the same network without SE"),
    "EfficientNetB1": {"size": 240, "eval_resize": 272},
    "EfficientNetB2": {"size": 260, "eval_resize": 292},
    "EfficientNetB3": {"size": 300, "eval_resize": 332},
    "EfficientNetB4": {"size": 380, "eval_resize": 412},
    "EfficientNetB5": {"size": 456, "eval_resize": 488},
    "EfficientNetB6": {"size": 528, "eval_resize": 560},
    "EfficientNetB7": {"size": 600, "eval_resize": 632, "eval_batch_size": 64},
    "GoogLeNet": {"base": FAMILIES["Inception"], "schedule": cosine(0.01, warmup_epoch=5), "size": 224,
                  "eval_resize": 256, "batch_ops": (), "label_smoothing": None, "train_metric": True,
                  "loss": "GoogLeNetLoss", "metric": "GoogLeNetTopkAcc"},
    "MobileNetV1": {"loader_workers": 8},
    "MobileNetV2": {"loader_workers": 8},
    "MobileNetV2_x0_25": {"l2": 3e-5},
    "MobileNetV2_x0_5": {"l2": 3e-5},
    "MobileNetV3_large_x1_0": {"lr": 0.65, "batch_size": 256, "augment": "AutoAugment", "loader_workers": 8},
    "MobileNetV3_large_x1_25": {"l2": 4e-5},
    "MobileNetV3_small_x0_35": {"l2": 1e-5},
    "MobileNetV3_small_x0_5": {"l2": 1e-5},
    "MobileNetV3_small_x1_0": {"notes": FROM_SCRATCH},
    "PPLCNet_x1_5": {"l2": 4e-5},
    "PPLCNet_x2_0": {"l2": 4e-5},
    "PPLCNet_x2_5": {"l2": 4e-5, "augment": "AutoAugment"},
    **{name: {"arch": {"drop_path_rate": 0.3, "drop_rate": 0.0}, "clip_grad": 1.0,
              "notes": ((("Optimizer", "clip_grad"), PVT_CLIP_GRAD),)}
       for name in ("PVT_V2_B3", "PVT_V2_B4", "PVT_V2_B5")},
    "RegNetX_4GF": _stand_in("RegNet/RegNetX_3200MF.yaml",
                             "it follows PaddleClas's RegNetX recipe (RegNetX_3200MF's, identical for every RegNetX)"),
    "RepVGG_B2": REPVGG_LARGE,
    "RepVGG_B2g4": REPVGG_LARGE,
    "RepVGG_B3g4": {**REPVGG_LARGE, "eval_interp": BICUBIC_PIL, "eval_batch_size": 128},
    "ResNeXt101_64x4d": {"l2": 1.5e-4},
    "ResNeXt101_vd_32x4d": VD,
    "ResNeXt101_vd_64x4d": VD,
    "ResNeXt152_64x4d": {"l2": 1.8e-4},
    "ResNeXt152_vd_32x4d": VD,
    "ResNeXt152_vd_64x4d": VD,
    "ResNeXt50_vd_32x4d": VD,
    "ResNeXt50_vd_64x4d": VD,
    "ResNet101_vd": VD,
    "ResNet152_vd": VD,
    "ResNet18_vd": VD_L2_7E5,
    "ResNet200_vd": VD,
    "ResNet34_vd": VD_L2_7E5,
    "ResNet50": {"notes": FROM_SCRATCH},
    "ResNet50_vc": {**_stand_in("ResNet/ResNet50.yaml", "it follows ResNet50's, the closest network"),
                    "notes": FROM_SCRATCH},
    "ResNet50_vd": VD_L2_7E5,
    "SE_HRNet_W64_C": _stand_in("HRNet/HRNet_W64_C.yaml", "it follows HRNet_W64_C's, the same network without SE"),
    "ShuffleNetV2_x0_25": {"l2": 3e-5},
    "ShuffleNetV2_x0_33": {"l2": 3e-5},
    "ShuffleNetV2_x0_5": {"l2": 3e-5},
    "ShuffleNetV2_x1_0": {"loader_workers": 8},
    "ShuffleNetV2_x1_5": {"lr": 0.25, "batch_size": 128},
    "ShuffleNetV2_x2_0": {"lr": 0.25, "batch_size": 128},
    "SwinTransformer_base_patch4_window12_384": AT_384,
    "SwinTransformer_base_patch4_window7_224": {"notes": FROM_SCRATCH},
    "SwinTransformer_large_patch4_window12_384": AT_384,
    "SwinTransformer_tiny_patch4_window7_224": {
        "amp": {"use_amp": True, "use_fp16_test": True, "scale_loss": 128.0, "use_dynamic_loss_scaling": True,
                "use_promote": False, "level": "O2"}},
    "VGG11": {"lr": 0.1, "l2": 2e-4, "batch_size": 128},
    "VGG13": {"l2": 3e-4},
    "VGG19": {"epochs": 150},
    "ViT_base_patch16_384": VIT_384,
    "ViT_base_patch32_384": VIT_384,
    "ViT_large_patch16_384": VIT_384,
    "ViT_large_patch32_384": VIT_384,
    "Xception65": {"epochs": 200, "batch_ops": MIXUP, "train_metric": False},
    "Xception71": {"epochs": 200, "batch_ops": MIXUP, "train_metric": False, "lr": 0.0225, "batch_size": 32},
    "alt_gvt_large": {"arch": {"drop_rate": 0.0, "drop_path_rate": 0.5}},
    "alt_gvt_small": {"arch": {"drop_rate": 0.0, "drop_path_rate": 0.2}},
    "pcpvt_large": {"arch": {"drop_rate": 0.0, "drop_path_rate": 0.5}},
    "pcpvt_small": {"arch": {"drop_rate": 0.0, "drop_path_rate": 0.2}},
}


def recipe_for(name: str, family: str) -> Recipe:
    if family not in FAMILIES:
        raise KeyError(f"{name}: no base recipe for family {family!r}; add one to FAMILIES")
    changes = dict(OVERRIDES.get(name, {}))
    return derive(changes.pop("base", FAMILIES[family]), **changes)


# ------------------------------------------------------------------------------------------------- rendering

def render(name: str, r: Recipe) -> dict:
    """The recipe as PaddleClas's YAML sections (plus ppipe's `Ray`), in PaddleClas's order."""
    train_size = r.train_size or r.size
    train_ops = [{"DecodeImage": {"to_rgb": True, "channel_first": False}},
                 {"RandCropImage": {"size": train_size, **r.train_interp}},
                 {"RandFlipImage": {"flip_code": 1}}]
    if r.augment == "AutoAugment":
        train_ops.append({"AutoAugment": None})
    elif r.augment == "TimmAutoAugment":
        train_ops.append({"TimmAutoAugment": {"config_str": "rand-m9-mstd0.5-inc1", "interpolation": "bicubic",
                                              "img_size": train_size}})
    elif r.augment is not None:
        raise ValueError(f"{name}: unknown augment {r.augment!r}")
    train_ops.append({"NormalizeImage": dict(r.normalize)})
    if r.erasing:
        train_ops.append({"RandomErasing": dict(RANDOM_ERASING)})
    eval_ops = [{"DecodeImage": {"to_rgb": r.eval_to_rgb, "channel_first": False}},
                {"ResizeImage": {"resize_short": r.eval_resize, **r.eval_interp}},
                {"CropImage": {"size": r.size}},
                {"NormalizeImage": dict(r.normalize)}]
    train_set = {"name": "PreparedDataset", "transform_ops": train_ops}
    if r.batch_ops:
        train_set["batch_transform_ops"] = list(r.batch_ops)
    smoothing = {"epsilon": r.label_smoothing} if r.label_smoothing else {}
    metric = [{r.metric: {"topk": [1, 5]}}]
    data: dict[str, Any] = {
        "Global": {"epochs": r.epochs, "output_dir": "./output/", "device": "gpu", "save_interval": 1,
                   "eval_during_train": True, "eval_interval": 1, "print_batch_step": 10,
                   "image_shape": [3, r.size, r.size], "recipe_workers": r.gpus},
    }
    if r.amp is not None:
        data["AMP"] = dict(r.amp)
    data.update({
        "Arch": {"name": name, "class_num": 1000, **r.arch},
        "Loss": {"Train": [{r.loss: {"weight": 1.0, **smoothing}}], "Eval": [{r.loss: {"weight": 1.0}}]},
        "Optimizer": r.optimizer,
        "DataLoader": {
            "Train": {"dataset": train_set,
                      "sampler": {"name": "DistributedBatchSampler", "batch_size": r.batch_size, "drop_last": False,
                                  "shuffle": True},
                      "loader": {"num_workers": r.loader_workers, "use_shared_memory": True}},
            "Eval": {"dataset": {"name": "PreparedDataset", "transform_ops": eval_ops},
                     "sampler": {"name": "DistributedBatchSampler", "batch_size": r.eval_batch_size,
                                 "drop_last": False, "shuffle": False},
                     "loader": {"num_workers": 4, "use_shared_memory": True}},
        },
        "Metric": {"Train": metric if r.train_metric else [], "Eval": metric},
        "Ray": {"num_workers": r.gpus, "use_gpu": True},
    })
    return copy.deepcopy(data)  # recipes share their constants; the YAML data shares nothing with them


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text[:-3].strip() if text.endswith("\n...") else text


def _is_flat(value: Any) -> bool:
    return not isinstance(value, (dict, list)) or (
        isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value))


def _emit(node: Any, depth: int, path: tuple[str, ...], notes: dict, out: list[str]) -> None:
    pad = "  " * depth
    if isinstance(node, dict):
        for key, value in node.items():
            if depth == 0:
                out.append("")  # a blank line before each section, as PaddleClas's recipes have
            out.extend(f"{pad}# {line}" for line in notes.pop(path + (key,), ()))
            if value is None:
                out.append(f"{pad}{key}:")
            elif _is_flat(value):
                out.append(f"{pad}{key}: {_scalar(value)}")
            else:
                out.append(f"{pad}{key}:")
                _emit(value, depth + 1, path + (key,), notes, out)
        return
    # A list of PaddleClas operators, losses or metrics: single-key mappings, as PaddleClas indents them.
    for item in node:
        (name, params), = item.items()
        if params is None:
            out.append(f"{pad}- {name}:")
        else:
            out.append(f"{pad}- {name}:")
            _emit(params, depth + 2, path + (name,), notes, out)


def _wrap(text: str, width: int = 116) -> list[str]:
    return textwrap.wrap(text, width=width, break_on_hyphens=False, break_long_words=False)


def _size_text(r: Recipe) -> str:
    train = r.train_size or r.size
    return f"{train}x{train}" + (f" (evaluated at {r.size}x{r.size})" if train != r.size else "")


def recipe_text(name: str, family: str, r: Recipe) -> str:
    """The YAML file for `name`: a header saying what it follows, then the sections."""
    data = render(name, r)
    source = f"{PADDLECLAS_DIR}/{r.source or f'{family}/{name}.yaml'}"
    opt, lr = r.optimizer, r.optimizer["lr"]
    base_lr = lr.get("learning_rate", lr.get("values", [None])[0])
    head = [f"{name}: ImageNet-1k training recipe for ppipe.",
            f"Follows PaddleClas's published recipe {source}:",
            f"  {r.gpus} GPUs x {r.batch_size} images, {opt['name']}, {lr['name']} lr {base_lr:g}, {r.epochs} epochs, "
            f"{_size_text(r)}.",
            *(line for text in r.header for line in _wrap(text)),
            "Generated by configs/ImageNet/make_recipes.py: edit its tables and rerun it, not this file.",
            f"Train: ppipe train configs/ImageNet/{family}/{name}.yaml --data PREPARED",
            "  (docs/recipes.md: preparing ImageNet, fewer GPUs and the learning-rate scaling that comes with it)"]
    out = [f"# {line}" for line in head]
    notes: dict[tuple[str, ...], list[str]] = {}
    for key_path, text in r.notes:
        notes.setdefault(tuple(key_path), []).extend(_wrap(text))
    _emit(data, 0, (), notes, out)
    if notes:
        raise ValueError(f"{name}: notes for keys the recipe does not have: {sorted(notes)}")
    text = "\n".join(out) + "\n"
    if yaml.safe_load(text) != data:  # the emitter and YAML's reader must agree on every value
        raise AssertionError(f"{name}: the written YAML does not read back as the recipe")
    return text


# --------------------------------------------------------------------------------------------------- writing

def all_recipes() -> dict[str, tuple[str, str]]:
    """{relative path: (model, YAML text)} for every architecture of the zoo, in a stable order."""
    from ppipe.models import get_spec, list_models

    out = {}
    for name in sorted(list_models(), key=lambda n: (get_spec(n).family, n)):
        family = get_spec(name).family
        out[f"{family}/{name}.yaml"] = (name, recipe_text(name, family, recipe_for(name, family)))
    unused = sorted(set(OVERRIDES) - {model for model, _ in out.values()})
    if unused:
        raise KeyError(f"overrides for models that are not in the zoo: {', '.join(unused)}")
    return out


def write_recipes(root: Path = HERE) -> list[str]:
    """Write every recipe under `root` (each file replaced in one step) and delete recipes no model has any more.
    Returns the relative paths written."""
    recipes = all_recipes()
    for rel, (_, text) in recipes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    for stale in sorted(set(existing_recipes(root)) - set(recipes)):
        (root / stale).unlink()
        print(f"removed {stale} (no such model in the zoo)", file=sys.stderr)
    return list(recipes)


def existing_recipes(root: Path = HERE) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.yaml"))


def check(root: Path = HERE) -> list[str]:
    """Relative paths whose file under `root` is missing, different or not produced by this script."""
    recipes = all_recipes()
    bad = [rel for rel, (_, text) in recipes.items()
           if not (root / rel).is_file() or (root / rel).read_text(encoding="utf-8") != text]
    return sorted(bad + [rel for rel in existing_recipes(root) if rel not in recipes])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: configs/ImageNet)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a recipe file differs")
    args = parser.parse_args(argv)
    if args.check:
        bad = check(args.out)
        for rel in bad:
            print(f"differs from make_recipes.py's output: {rel}", file=sys.stderr)
        return 1 if bad else 0
    written = write_recipes(args.out)
    print(f"wrote {len(written)} recipes under {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
