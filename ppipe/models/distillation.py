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
{"logits": logits, pattern: that sublayer's output, ...} instead, for feature-map losses. A member may also be an
`AttentionModel` (AFD: a zoo backbone and transforms of its feature maps, `ppipe.models.afd_attention`). Frozen
members and parameter names: `ppipe.models.composite`. `infer_model` is the model exported and published: the
`infer_model_name` model, or that AttentionModel's backbone.
"""

from __future__ import annotations

from typing import Any

import paddle
import paddle.nn as nn

from ppipe.errors import ConfigError
from ppipe.model_outputs import NAMED
from ppipe.models.composite import ModelMembers
from ppipe.models.feature_taps import FeatureTaps, check_patterns

DISTILLATION = "DistillationModel"  # the Arch name, which no zoo architecture takes
ARCH_KEYS = ("models", "freeze_params_list", "pretrained_list", "infer_model_name")
_MODEL_KEYS = ("name", "class_num", "pretrained", "use_ssld", "return_patterns")
_ATTENTION_KEYS = ("name", "class_num", "models", "pretrained_list", "freeze_params_list")


def _members(kwargs: dict[str, Any], where: str) -> list[tuple[str, dict]]:
    """[(key, spec)] of a `models: [- Key: {name: ..., ...}]` list, with `pretrained_list`/`freeze_params_list` of
    its length, and at least two models."""
    models = kwargs.get("models")
    if not isinstance(models, list) or len(models) < 2:
        raise ConfigError(f"{where}.models: {kwargs.get('name', DISTILLATION)} needs a list of at least two named "
                          f"models")
    out = []
    for i, item in enumerate(models):
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{where}.models[{i}]: expected '- Name: {{name: Arch, ...}}', got {item!r}")
        (key, spec), = item.items()
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"{where}.models[{i}].{key}: needs a 'name' (a zoo architecture)")
        out.append((key, spec))
    keys = [k for k, _ in out]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{where}.models: model keys must be unique, got {keys}")
    for name in ("pretrained_list", "freeze_params_list"):
        if kwargs.get(name) and len(kwargs[name]) != len(out):
            raise ConfigError(f"{where}.{name}: {len(kwargs[name])} entries for {len(out)} models")
    return out


def _zoo_model(spec: dict, class_num: int | None, pretrained, where: str) -> dict:
    """{"name", "class_num", "pretrained", "return_patterns", "kwargs"} of a zoo-architecture member."""
    from ppipe.models import get_spec

    try:
        get_spec(spec["name"])
    except (KeyError, ValueError) as e:
        raise ConfigError(f"{where}.name: {e}") from None
    pretrained = spec.get("pretrained", False) or pretrained
    if pretrained is True:
        raise ConfigError(f"{where}.pretrained: give the path of a .pdparams file (weights are never downloaded)")
    patterns = spec.get("return_patterns")
    try:
        patterns = check_patterns(patterns, f"{where}.return_patterns") if patterns else ()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return {"name": spec["name"], "class_num": spec.get("class_num", class_num), "pretrained": pretrained or None,
            "return_patterns": patterns, "kwargs": {k: v for k, v in spec.items() if k not in _MODEL_KEYS}}


def _attention_model(spec: dict, class_num: int | None, pretrained, where: str) -> dict:
    """An `AttentionModel` member (`ppipe.models.afd_attention`): its backbone's (first model's) spec, which is
    what is evaluated and exported, plus "attention": the backbone's key and freezing, and the transforms
    [(key, name, params, frozen)]."""
    from ppipe.models.afd_attention import TRANSFORMS

    unknown = [k for k in spec if k not in _ATTENTION_KEYS]
    if unknown:
        raise ConfigError(f"unknown key {where}.{unknown[0]}; AttentionModel takes {', '.join(_ATTENTION_KEYS)}")
    if pretrained:
        raise ConfigError(f"{where}: weights for a whole AttentionModel are not supported; give its backbone's in "
                          f"its models[0] pretrained")
    members = _members(spec, where)
    weights = spec.get("pretrained_list") or [None] * len(members)
    frozen = [bool(f) for f in spec.get("freeze_params_list") or [False] * len(members)]
    (backbone_key, backbone_spec), *rest = members
    backbone = _zoo_model(backbone_spec, spec.get("class_num", class_num), weights[0],
                          f"{where}.models[0].{backbone_key}")
    if not backbone["return_patterns"]:
        raise ConfigError(f"{where}.models[0].{backbone_key}.return_patterns: the backbone must return the feature "
                          f"maps its transforms read")
    transforms = []
    for j, (key, transform) in enumerate(rest, 1):
        at = f"{where}.models[{j}].{key}"
        if weights[j]:
            raise ConfigError(f"{where}.pretrained_list[{j}]: only the backbone (models[0]) takes weights")
        params = {k: v for k, v in transform.items() if k != "name"}
        TRANSFORMS.check_params(transform["name"], params, at)
        absent = [k for k in params["keys"] if k not in backbone["return_patterns"]]
        if absent:
            raise ConfigError(f"{at}.keys: {absent[0]!r} is not among the backbone's return_patterns "
                              f"{list(backbone['return_patterns'])}")
        transforms.append((key, transform["name"], params, frozen[j]))
    return {**backbone, "attention": {"backbone_key": backbone_key, "backbone_frozen": frozen[0],
                                      "transforms": transforms}}


def parse_models(kwargs: dict[str, Any], class_num: int | None, where: str = "Arch") -> list[tuple[str, dict]]:
    """[(key, {"name", "class_num", "pretrained", "return_patterns", "kwargs"})] from a DistillationModel Arch
    section; "return_patterns" is a tuple of sublayer paths, empty for a model that returns its logits alone. An
    `AttentionModel` member is described by its backbone, the model it publishes, plus "attention"."""
    from ppipe.models.afd_attention import ATTENTION

    unknown = [k for k in kwargs if k not in ARCH_KEYS]
    if unknown:
        raise ConfigError(f"unknown key {where}.{unknown[0]}; DistillationModel takes {', '.join(ARCH_KEYS)}")
    members = _members(kwargs, where)
    weights = kwargs.get("pretrained_list") or [None] * len(members)
    out = []
    for i, (key, spec) in enumerate(members):
        parse = _attention_model if spec["name"] == ATTENTION else _zoo_model
        out.append((key, parse(spec, class_num, weights[i], f"{where}.models[{i}].{key}")))
    keys = [k for k, _ in out]
    infer = kwargs.get("infer_model_name", keys[-1])
    if infer not in keys:
        raise ConfigError(f"{where}.infer_model_name: {infer!r} is not one of the models {keys}")
    return out


def map_member_weights(kwargs: dict[str, Any], fn) -> dict[str, Any]:
    """`Arch` arguments of a DistillationModel with `fn` applied to every weight path of every member, however
    deep: each member's `pretrained`, each `pretrained_list`, and the members of an AttentionModel (its own
    `models`). Other values are left as they are; the result is a new structure."""
    out = dict(kwargs)
    if kwargs.get("pretrained_list"):
        out["pretrained_list"] = [fn(p) for p in kwargs["pretrained_list"]]
    if kwargs.get("models"):
        out["models"] = [{key: _mapped_member(spec, fn) for key, spec in item.items()} if isinstance(item, dict)
                         else item for item in kwargs["models"]]
    return out


def _mapped_member(spec, fn):
    if not isinstance(spec, dict):
        return spec
    spec = map_member_weights(spec, fn)
    return {**spec, "pretrained": fn(spec["pretrained"])} if "pretrained" in spec else spec


def member_weight_paths(spec: dict[str, Any]) -> list[str]:
    """Every weight file path (a string `pretrained`) of one member of `Arch.models`, its nested members and
    `pretrained_list` included: what a teacher's weights come from."""
    found: list[str] = []
    map_member_weights({"models": [{"member": spec}]}, lambda p: found.append(p) if isinstance(p, str) else None)
    return found


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


class DistillationModel(ModelMembers):
    train_outputs = NAMED  # {model key: logits or, with taps, {"logits", pattern...}}, in training and evaluation

    def __init__(self, models: list[tuple[str, nn.Layer]], frozen: list[bool], infer_model_name: str,
                 taps: dict[str, FeatureTaps] | None = None):
        super().__init__(models, frozen, taps)
        self.infer_model_name = infer_model_name

    @property
    def infer_model(self) -> nn.Layer:
        """The model evaluated, exported and published: model `infer_model_name`, or an AttentionModel's backbone."""
        model = getattr(self, self.infer_model_name)
        return getattr(model, "infer_model", model)

    def forward(self, x):
        return {key: self.run_member(key, x) for key in self.names}


def _build_member(spec: dict, where: str) -> tuple[nn.Layer, FeatureTaps | None]:
    """The layer of a parsed member (`parse_models`), and its feature taps when it returns feature maps itself."""
    from ppipe.models import create_model

    model = create_model(spec["name"], num_classes=spec["class_num"] or 1000, pretrained=spec["pretrained"],
                         **spec["kwargs"])
    taps = FeatureTaps(spec["return_patterns"]) if spec["return_patterns"] else None
    if taps is not None:
        taps.check(model)
    attention = spec.get("attention")
    if attention is None:
        return model, taps
    from ppipe.models.afd_attention import AttentionModel, build_transform

    members = [(attention["backbone_key"], model)]
    members += [(key, build_transform(name, params, f"{where}.{key}"))
                for key, name, params, _ in attention["transforms"]]
    frozen = [attention["backbone_frozen"]] + [f for *_, f in attention["transforms"]]
    return AttentionModel(members, frozen, {attention["backbone_key"]: taps}), None


def build_distillation_model(kwargs: dict[str, Any], class_num: int | None) -> DistillationModel:
    specs = parse_models(kwargs, class_num)
    built = [(key, *_build_member(s, f"Arch.models[{i}].{key}")) for i, (key, s) in enumerate(specs)]
    frozen = [bool(f) for f in (kwargs.get("freeze_params_list") or [False] * len(built))]
    taps = {key: t for key, _, t in built if t is not None}
    return DistillationModel([(key, model) for key, model, _ in built], frozen,
                             kwargs.get("infer_model_name", specs[-1][0]), taps)
