"""Every zoo family's FP32 program on Paddle Inference's oneDNN predictor runs its computations on oneDNN's
optimised kernels: no convolution, matmul, product or other compute primitive falls back to oneDNN's reference
implementation (plain loops). RedNet's involution did, through products broadcast along a middle axis of 5-D
tensors, and ran 10x slower for it (docs/export.md); nothing but the checks' numbers showed it.

Same architectures as the converter sweep (`tests/test_export_zoo.py`), a batch of 2 (some fallbacks show only above
batch 1: SwinTransformer's mask, broadcast along the heads axis, took 1.8x its time at batch 8), 2 threads, the
program's own `predictor.json` (the passes a family needs deleted), at 64 px (or the architecture's fixed size;
RedNet's single-position products, its last stage at 32 px, are checked by tests/test_models_rednet.py).
Concatenation is exempt: a reference concat is a memory copy (ShuffleNet's
channel split-and-join, ESNet, MobileViT, RedNet's zero padding: at most 0.2 ms a run at these inputs).
"""

from __future__ import annotations

import pytest

from tests.export_context import make_context
from tests.onednn_verbose import executed_primitives
from tests.test_export_zoo import SMALLEST_PER_FAMILY, _family_params
from tests.zoo_cases import test_input_size

COPY_ONLY = {"concat"}


@pytest.mark.parametrize("family", _family_params())
def test_family_computes_on_onednns_optimised_kernels(family, tmp_path):
    name = SMALLEST_PER_FAMILY[family]
    size = test_input_size(name, preferred=64)
    ctx = make_context(tmp_path, name, size, 10, calibration_batches=None)
    executed = executed_primitives(ctx.reference_dir, (2, 3, size, size), threads=2)
    assert any(p.kind in ("convolution", "matmul") for p in executed), [p.line for p in executed[:5]]
    fallbacks = [p for p in executed if p.reference and p.kind not in COPY_ONLY]
    assert not fallbacks, (f"{name}: {len(fallbacks)} primitive(s) on oneDNN's reference kernels, "
                           f"{sum(p.ms for p in fallbacks):.1f} of {sum(p.ms for p in executed):.1f} ms: "
                           + " | ".join(p.line for p in fallbacks[:3]))
    print(f"{family} {name} at {size}: {len(executed)} primitives, "
          f"{sum(p.ms for p in executed):.1f} ms, reference concat {sum(p.reference for p in executed)}")
