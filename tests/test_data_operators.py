"""The operator registries: transform and batch operators live in two `ppipe.registry.Registry`s, a name
registered twice is an error, and unknown names or parameters are answered with the closest known ones."""

from __future__ import annotations

import pytest

from ppipe.data import (BATCH_OPERATORS, OPERATORS, OperatorParamError, UnknownOperatorError, create_batch_operators,
                        create_operators, register_batch_operator, register_operator)
from ppipe.data.batch_ops import BatchOperator, MixupOperator
from ppipe.data.transforms import DecodeImage, Operator


def test_registering_a_transform_operator_name_twice_is_an_error_and_keeps_the_first():
    impostor = type("DecodeImage", (Operator,), {})
    with pytest.raises(ValueError, match="transform operator 'DecodeImage' is already registered"):
        register_operator(impostor)
    assert OPERATORS.get("DecodeImage") is DecodeImage


def test_registering_a_batch_operator_name_twice_is_an_error_and_keeps_the_first():
    impostor = type("MixupOperator", (BatchOperator,), {})
    with pytest.raises(ValueError, match="batch operator 'MixupOperator' is already registered"):
        register_batch_operator(impostor)
    with pytest.raises(ValueError, match="already registered"):
        register_operator(impostor)  # the general decorator files a batch operator with the batch operators
    assert BATCH_OPERATORS.get("MixupOperator") is MixupOperator


def test_per_sample_and_batch_operators_are_registered_apart():
    assert not set(OPERATORS) & set(BATCH_OPERATORS)
    assert {"DecodeImage", "RandAugment", "RandomErasing", "ColorJitter"} <= set(OPERATORS)
    assert {"MixupOperator", "CutmixOperator", "OpSampler"} == set(BATCH_OPERATORS)


@pytest.mark.parametrize("build, name, suggestion", [
    (lambda ops: create_operators(ops), "RandomCropImage", "RandCropImage"),
    (lambda ops: create_operators(ops), "TimmAutoAugmnt", "TimmAutoAugment"),
    (lambda ops: create_batch_operators(ops, class_num=3), "CutMixOperator", "CutmixOperator"),
])
def test_unknown_operator_is_an_error_naming_the_closest(build, name, suggestion):
    with pytest.raises(UnknownOperatorError, match=rf"unknown \w+ operator '{name}' \(did you mean {suggestion}"):
        build([{name: None}])


def test_unknown_parameter_is_an_error_naming_the_closest():
    with pytest.raises(OperatorParamError, match=r"RandCropImage: unknown parameter 'sise' \(did you mean size\?\)"):
        create_operators([{"RandCropImage": {"sise": 224}}])
    with pytest.raises(OperatorParamError, match=r"MixupOperator: unknown parameter 'alpa' \(did you mean alpha\?\)"):
        create_batch_operators([{"MixupOperator": {"alpa": 0.2}}], class_num=3)


def test_an_operator_in_the_wrong_list_is_an_error_naming_the_right_list():
    with pytest.raises(OperatorParamError, match="CutmixOperator is a batch operator: list it under "
                                                 "batch_transform_ops, not transform_ops"):
        create_operators([{"CutmixOperator": None}])
    with pytest.raises(OperatorParamError, match="DecodeImage is a per-sample operator: list it under "
                                                 "transform_ops, not batch_transform_ops"):
        create_batch_operators([{"DecodeImage": None}], class_num=3)


def test_operator_errors_stay_value_errors_for_callers_that_catch_those():
    assert issubclass(UnknownOperatorError, ValueError) and issubclass(OperatorParamError, ValueError)


def test_a_bare_name_and_a_null_parameter_mapping_both_build_an_operator():
    ops = create_operators(["ToCHWImage", {"DecodeImage": None}])
    assert [type(o).__name__ for o in ops.ops] == ["ToCHWImage", "DecodeImage"]
