"""`DistillationModel`: named zoo models run on the same batch, as PaddleClas's `Arch: DistillationModel`.

    Arch:
      name: DistillationModel
      class_num: 10
      freeze_params_list: [true, false]
      models:
        - Teacher: {name: PPLCNet_x1_0, pretrained: output/teacher/model.pdparams}
        - Student: {name: PPLCNet_x0_25, return_patterns: ["blocks5"]}
      infer_model_name: Student

`forward` returns {name: logits}; a model given `return_patterns` (`ppipe.models.feature_taps`) returns
{"logits": logits, pattern: that sublayer's output, ...} instead, for feature-map losses. A frozen model runs
without gradients and stays in eval mode (its BatchNorm statistics are the trained teacher's, not those of the
student's batches). Parameter names are
`<Name>.<model key>`, as in PaddleClas's distillation checkpoints; `infer_model` is the model exported and
published.
"""

from __future__ import annotations

from typing import Any

import paddle
import paddle.nn as nn

from ppipe.errors import ConfigError
from ppipe.model_outputs import NAMED
from ppipe.models.feature_taps import FeatureTaps, check_patterns

DISTILLATION = "DistillationModel"  # the Arch name, which no zoo architecture takes
ARCH_KEYS = ("models", "freeze_params_list", "pretrained_list", "infer_model_name")
_MODEL_KEYS = ("name", "class_num", "pretrained", "use_ssld", "return_patterns")


def parse_models(kwargs: dict[str, Any], class_num: int | None, where: str = "Arch") -> list[tuple[str, dict]]:
    """[(key, {"name", "class_num", "pretrained", "return_patterns", "kwargs"})] from a DistillationModel Arch
    section; "return_patterns" is a tuple of sublayer paths, empty for a model that returns its logits alone."""
    from ppipe.models import get_spec

    unknown = [k for k in kwargs if k not in ARCH_KEYS]
    if unknown:
        raise ConfigError(f"unknown key {where}.{unknown[0]}; DistillationModel takes {', '.join(ARCH_KEYS)}")
    models = kwargs.get("models")
    if not isinstance(models, list) or len(models) < 2:
        raise ConfigError(f"{where}.models: DistillationModel needs a list of at least two named models")
    pretrained_list = kwargs.get("pretrained_list") or [None] * len(models)
    if len(pretrained_list) != len(models):
        raise ConfigError(f"{where}.pretrained_list: {len(pretrained_list)} entries for {len(models)} models")
    out = []
    for i, item in enumerate(models):
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{where}.models[{i}]: expected '- Name: {{name: Arch, ...}}', got {item!r}")
        (key, spec), = item.items()
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"{where}.models[{i}].{key}: needs a 'name' (a zoo architecture)")
        try:
            get_spec(spec["name"])
        except (KeyError, ValueError) as e:
            raise ConfigError(f"{where}.models[{i}].{key}.name: {e}") from None
        pretrained = spec.get("pretrained", False) or pretrained_list[i]
        if pretrained is True:
            raise ConfigError(f"{where}.models[{i}].{key}.pretrained: give the path of a .pdparams file "
                              f"(weights are never downloaded)")
        patterns = spec.get("return_patterns")
        try:
            patterns = check_patterns(patterns, f"{where}.models[{i}].{key}.return_patterns") if patterns else ()
        except ValueError as e:
            raise ConfigError(str(e)) from None
        out.append((key, {"name": spec["name"], "class_num": spec.get("class_num", class_num),
                          "pretrained": pretrained or None, "return_patterns": patterns,
                          "kwargs": {k: v for k, v in spec.items() if k not in _MODEL_KEYS}}))
    keys = [k for k, _ in out]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{where}.models: model keys must be unique, got {keys}")
    freeze = kwargs.get("freeze_params_list") or [False] * len(out)
    if len(freeze) != len(out):
        raise ConfigError(f"{where}.freeze_params_list: {len(freeze)} entries for {len(out)} models")
    infer = kwargs.get("infer_model_name", keys[-1])
    if infer not in keys:
        raise ConfigError(f"{where}.infer_model_name: {infer!r} is not one of the models {keys}")
    return out


def check_return_patterns(spec: dict, where: str) -> None:
    """Refuse return_patterns of a parsed model `spec` (`parse_models`) that name no sublayer of its architecture,
    checked on the model built without weights (`paddle.LazyGuard`)."""
    if not spec["return_patterns"]:
        return
    from ppipe.models import create_model

    with paddle.LazyGuard():
        model = create_model(spec["name"], num_classes=spec["class_num"] or 1000, **spec["kwargs"])
    try:
        FeatureTaps(spec["return_patterns"]).check(model)
    except ValueError as e:
        raise ConfigError(f"{where}.{e}") from None


class DistillationModel(nn.Layer):
    train_outputs = NAMED  # {model key: logits or, with taps, {"logits", pattern...}}, in training and evaluation

    def __init__(self, models: list[tuple[str, nn.Layer]], frozen: list[bool], infer_model_name: str,
                 taps: dict[str, FeatureTaps] | None = None):
        super().__init__()
        self.names = [k for k, _ in models]
        self.frozen = dict(zip(self.names, frozen))
        self.taps = dict(taps or {})
        for key, model in models:
            self.add_sublayer(key, model)
            # Every zoo model names its parameters conv2d_0.w_0 ... from zero (`create_model`), and the optimizer
            # keeps its state (momentum, Adam's moments) per parameter name: two models training side by side (DML)
            # would share it. The model's key makes the names unique; state-dict keys do not use these names.
            for p in model.parameters():
                p.name = f"{key}.{p.name}"
            if self.frozen[key]:
                for p in model.parameters():
                    p.stop_gradient = True
                    p.trainable = False
        self.infer_model_name = infer_model_name

    @property
    def infer_model(self) -> nn.Layer:
        return getattr(self, self.infer_model_name)

    def train(self):
        super().train()
        for key in self.names:
            if self.frozen[key]:
                getattr(self, key).eval()
        return self

    def _run(self, key: str, x):
        model = getattr(self, key)
        if self.frozen[key] and model.training:
            # a wrapper's train() (DataParallel's, ModelWithLossLayers') sets every sublayer training, this one too
            model.eval()
        return self.taps[key](model, x) if key in self.taps else model(x)

    def forward(self, x):
        out = {}
        for key in self.names:
            if self.frozen[key]:
                with paddle.no_grad():
                    out[key] = self._run(key, x)
            else:
                out[key] = self._run(key, x)
        return out


def build_distillation_model(kwargs: dict[str, Any], class_num: int | None) -> DistillationModel:
    from ppipe.models import create_model

    specs = parse_models(kwargs, class_num)
    models = [(key, create_model(s["name"], num_classes=s["class_num"] or 1000, pretrained=s["pretrained"],
                                 **s["kwargs"])) for key, s in specs]
    frozen = [bool(f) for f in (kwargs.get("freeze_params_list") or [False] * len(models))]
    taps = {key: FeatureTaps(s["return_patterns"]) for key, s in specs if s["return_patterns"]}
    for key, model in models:
        if key in taps:
            taps[key].check(model)
    return DistillationModel(models, frozen, kwargs.get("infer_model_name", specs[-1][0]), taps)
