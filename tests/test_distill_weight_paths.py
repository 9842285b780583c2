"""Weight paths of distillation members at any depth: made absolute for the Ray workers, listed as the teacher's
parents in the lineage (an AFD teacher is an AttentionModel whose backbone holds the weights)."""

import os

from ppipe.models.distillation import map_member_weights, member_weight_paths
from ppipe.train.trainer import _absolute_arch_weights

AFD_LIKE = {
    "infer_model_name": "Student",
    "pretrained_list": None,
    "models": [
        {"Teacher": {"name": "AttentionModel", "pretrained_list": ["lt.pdparams", None],
                     "models": [{"ResNet34": {"name": "ResNet34", "pretrained": "teacher/r34.pdparams"}},
                                {"LinearTransformTeacher": {"name": "LinearTransformTeacher", "qk_dim": 8}}]}},
        {"Student": {"name": "ResNet18", "pretrained": False}},
    ],
}


def test_nested_weight_paths_become_absolute_and_the_recipe_is_left_alone():
    out = _absolute_arch_weights(AFD_LIKE)
    teacher = out["models"][0]["Teacher"]
    assert teacher["models"][0]["ResNet34"]["pretrained"] == os.path.abspath("teacher/r34.pdparams")
    assert teacher["pretrained_list"] == [os.path.abspath("lt.pdparams"), None]
    assert out["models"][1]["Student"]["pretrained"] is False  # not a path
    assert teacher["models"][1]["LinearTransformTeacher"] == {"name": "LinearTransformTeacher", "qk_dim": 8}
    assert AFD_LIKE["models"][0]["Teacher"]["models"][0]["ResNet34"]["pretrained"] == "teacher/r34.pdparams"


def test_member_weight_paths_finds_a_teachers_weights_one_level_down():
    teacher, student = AFD_LIKE["models"][0]["Teacher"], AFD_LIKE["models"][1]["Student"]
    assert sorted(member_weight_paths(teacher)) == ["lt.pdparams", "teacher/r34.pdparams"]
    assert member_weight_paths(student) == []
    assert member_weight_paths({"name": "ResNet34", "pretrained": "s3://b/r34.pdparams"}) == ["s3://b/r34.pdparams"]
    assert map_member_weights({"name": "x"}, str) == {"name": "x"}
