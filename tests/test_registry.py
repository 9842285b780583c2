"""The Registry type behind PaddleClas's named lists (operators, losses, metrics, schedules, optimizers): a name
registered twice is an error, unknown names and parameters are answered with the closest known ones, and the
`[{Name: {params}}]` list form is parsed in one place."""

import pytest

from ppipe.errors import ConfigError
from ppipe.registry import Registry, closest, named_items


def _shapes() -> Registry:
    shapes = Registry("shape")

    @shapes.register
    class Circle:
        def __init__(self, radius: float = 1.0):
            self.radius = radius

    @shapes.register(name="Square")
    def make_square(side: float, weight: float = 1.0):
        return ("square", side, weight)

    return shapes


def test_decorator_registers_under_the_class_name_or_the_given_name():
    shapes = _shapes()
    assert shapes.names() == ["Circle", "Square"] and list(shapes) == ["Circle", "Square"] and len(shapes) == 2
    assert "Square" in shapes and "make_square" not in shapes
    assert shapes.build("Square", {"side": 2.0}) == ("square", 2.0, 1.0)
    assert shapes.build("Circle", {"radius": 3}).radius == 3


def test_registering_a_name_twice_is_an_error_even_for_the_same_object():
    shapes = _shapes()
    circle = shapes.get("Circle")
    with pytest.raises(ValueError, match=r"shape 'Circle' is already registered"):
        shapes.register(circle)
    with pytest.raises(ValueError, match=r"shape 'Square' is already registered"):
        shapes.register(lambda: None, name="Square")


def test_unknown_name_is_answered_with_the_closest_known_names():
    with pytest.raises(ConfigError, match=r"^Shapes\[0\]: unknown shape 'Cirle' \(did you mean Circle\?\); "
                                          r"known: Circle, Square$"):
        _shapes().get("Cirle", "Shapes[0]")
    with pytest.raises(ConfigError, match=r"unknown shape 'Hexagon'; known: Circle, Square$"):  # nothing close
        _shapes().get("Hexagon")


def test_unknown_parameter_is_answered_with_the_closest_valid_ones():
    with pytest.raises(ConfigError, match=r"^Shapes\[1\]\.Square: unknown parameter 'sid' \(did you mean side\?\); "
                                          r"valid parameters: side, weight$"):
        _shapes().build("Square", {"sid": 1.0}, "Shapes[1]")
    with pytest.raises(ConfigError, match=r"Square: .*missing 1 required positional argument: 'side'"):
        _shapes().build("Square", {})


def test_declared_params_and_value_checks_are_asked_before_building():
    built = []
    losses = Registry("loss")

    @losses.register
    class Smooth:
        params = ("weight", "epsilon")  # declared keys win over the signature

        @classmethod
        def check_values(cls, params, where):
            if params.get("epsilon", 0) >= 1:
                raise ConfigError(f"{where}.epsilon: expected < 1")

        def __init__(self, **kwargs):
            built.append(kwargs)

    with pytest.raises(ConfigError, match=r"Loss\[0\]\.Smooth: unknown parameter 'gamma'"):
        losses.build("Smooth", {"gamma": 1}, "Loss[0]")
    with pytest.raises(ConfigError, match=r"^Loss\[0\]\.Smooth\.epsilon: expected < 1$"):
        losses.build("Smooth", {"epsilon": 1.5}, "Loss[0]")
    assert built == []  # nothing was built from a refused item
    losses.build("Smooth", {"epsilon": 0.1}, "Loss[0]")
    assert built == [{"epsilon": 0.1}]


def test_build_all_builds_a_paddleclas_list_in_order_and_names_the_item_at_fault():
    shapes = _shapes()
    built = shapes.build_all([{"Square": {"side": 2}}, "Circle", {"Circle": None}, {"Circle": {"radius": 5}}],
                             "Shapes")
    assert built[0] == ("square", 2, 1.0) and [s.radius for s in built[1:]] == [1.0, 1.0, 5]
    assert shapes.build_all(None, "Shapes") == []
    with pytest.raises(ConfigError, match=r"^Shapes\[1\]: unknown shape 'Sqare' \(did you mean Square\?\)"):
        shapes.build_all([{"Circle": {}}, {"Sqare": {"side": 1}}], "Shapes")
    with pytest.raises(ConfigError, match=r"^Shapes\[0\]: expected a single-key mapping"):
        shapes.build_all([{"Circle": {}, "Square": {}}], "Shapes")
    with pytest.raises(ConfigError, match=r"^Shapes\[0\]\.Circle: expected a mapping of parameters, got 3"):
        shapes.build_all([{"Circle": 3}], "Shapes")
    with pytest.raises(ConfigError, match=r"^Shapes: expected a list"):
        shapes.build_all({"Circle": {}}, "Shapes")


def test_named_items_and_closest_serve_every_list():
    assert named_items([{"A": {"x": 1}}, "B", {"C": None}], "L") == [("A", {"x": 1}), ("B", {}), ("C", {})]
    assert closest("TopAcc", ["TopkAcc", "GoogLeNetTopkAcc", "DistillationTopkAcc"]) == " (did you mean TopkAcc?)"
    assert closest("zzz", ["TopkAcc"]) == ""


def test_a_registry_raises_its_own_error_type():
    class OperatorError(ValueError):
        pass

    ops = Registry("operator", error=OperatorError)
    ops.register(lambda size=1: size, name="Crop")
    with pytest.raises(OperatorError, match="unknown operator 'Cop'"):
        ops.get("Cop")
    with pytest.raises(OperatorError, match="unknown parameter 'sise'"):
        ops.build("Crop", {"sise": 2})
