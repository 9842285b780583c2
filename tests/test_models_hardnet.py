"""HarDNet: harmonic links and widths; PaddleClas's classifier, kept inside its `base` list, loads into `fc`."""

from __future__ import annotations

import numpy as np

from ppipe.models import create_model, load_pretrained
from ppipe.models.hardnet import harmonic_link


def test_harmonic_layer_reads_layers_a_power_of_two_back_and_widens_per_extra_link():
    # HarDNet68's first block: input 64 channels, growth 14, x1.7 per extra link, widths rounded to even
    assert harmonic_link(1, 64, 14, 1.7) == (14, 64, [0])
    assert harmonic_link(2, 64, 14, 1.7) == (24, 14 + 64, [1, 0])  # 14 * 1.7 = 23.8 -> 24
    assert harmonic_link(3, 64, 14, 1.7) == (14, 24, [2])
    assert harmonic_link(4, 64, 14, 1.7) == (40, 14 + 24 + 64, [3, 2, 0])  # 14 * 1.7^2 = 40.46 -> 40


def test_paddleclas_classifier_key_inside_base_loads_into_fc():
    model = create_model("HarDNet39_ds")
    head = f"base.{len(model.base)}.3."
    state = {(head + k[3:] if k.startswith("fc.") else k): np.full(v.shape, 0.5, "float32")
             for k, v in model.state_dict().items()}
    assert head + "weight" in state and "fc.weight" not in state
    load_pretrained(model, state)
    np.testing.assert_array_equal(model.fc.weight.numpy(), state[head + "weight"])
    np.testing.assert_array_equal(model.base[0].conv.weight.numpy(), state["base.0.conv.weight"])
