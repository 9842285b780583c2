"""Which architectures a zoo-wide test runs by default, and at what input size.

The default run covers one architecture per family (the smallest); the rest are marked `slow` and run in
CI's bounded slow sweep. Families add nothing here: the registry and each spec say everything.
"""

from __future__ import annotations

import pytest

from ppipe.models import get_spec, list_models

ALL = list_models()


def _representatives() -> set[str]:
    best: dict[str, str] = {}
    for name in ALL:
        fam = get_spec(name).family
        if fam not in best or get_spec(name).params_m < get_spec(best[fam]).params_m:
            best[fam] = name
    return set(best.values())


REPRESENTATIVES = _representatives()


def zoo_params(names=None):
    """`pytest.param`s over `names` (default: the whole zoo), non-representatives marked slow."""
    return [pytest.param(n, marks=() if n in REPRESENTATIVES else pytest.mark.slow, id=n) for n in (names or ALL)]


def test_input_size(name: str, preferred: int = 64) -> int:
    """The input side a test should use: the spec's size for fixed-input architectures, else `preferred`
    (raised to the architecture's minimum)."""
    s = get_spec(name)
    return s.input_size if s.fixed_input else max(preferred, s.min_input_size)


test_input_size.__test__ = False  # a helper, not a test


def _se_hrnet_w64(backbone):
    # PaddleClas publishes SE_HRNet_W64_C weights but has no constructor of that name: it is HRNet_W64_C's
    # network with SE blocks.
    from paddleclas.ppcls.arch.backbone.legendary_models.hrnet import MODEL_STAGES_PATTERN, HRNet

    return HRNet(width=64, stages_pattern=MODEL_STAGES_PATTERN["HRNet"], has_se=True)


# Architectures whose PaddleClas oracle is not `getattr(backbone, name)()`.
ORACLE_BUILDERS = {"SE_HRNet_W64_C": _se_hrnet_w64}


def build_oracle(name: str):
    """PaddleClas's own model for `name` (call inside `paddle.utils.unique_name.guard()`)."""
    from paddleclas.ppcls.arch import backbone

    builder = ORACLE_BUILDERS.get(name)
    return builder(backbone) if builder else getattr(backbone, name)()


def _rednet_with_small_involution_kernels(name: str):
    # An involution multiplies its input by kernels generated from that input, so with random weights and BN
    # statistics that do not normalise, activations square at every block and PaddleClas's RedNet101 overflows to
    # NaN. Kernel generators (`Involution.conv2`) scaled down 100x keep every RedNet finite.
    def build(backbone):
        model = getattr(backbone, name)()
        for key, param in model.named_parameters():
            if key.endswith("conv2.conv.weight"):
                param.set_value(param * 0.01)
        return model

    return build


ORACLE_BUILDERS.update({n: _rednet_with_small_involution_kernels(n)
                        for n in ("RedNet26", "RedNet38", "RedNet50", "RedNet101", "RedNet152")})


def _mixnet_with_global_pool(name: str):
    # PaddleClas's MixNet pools with a fixed 7x7 window (`features.final_pool`), which fails below 193 px and equals
    # global pooling at 224; with global pooling the oracle runs at the tests' small inputs. tests/test_models_mixnet.py
    # checks ppipe's MixNet against the unmodified oracle at 224.
    def build(backbone):
        from paddle.nn import AdaptiveAvgPool2D

        model = getattr(backbone, name)()
        model.features.final_pool = AdaptiveAvgPool2D(1)
        return model

    return build


ORACLE_BUILDERS.update({n: _mixnet_with_global_pool(n) for n in ("MixNet_S", "MixNet_M", "MixNet_L")})


def _googlenet_main_logits(backbone):
    # PaddleClas's GoogLeNet returns [logits, aux1, aux2] in every mode; its inference and export use the first
    # (ExportModel: `x = x[0]`), which is what ppipe's GoogLeNet returns in eval mode.
    from paddleclas.ppcls.arch.backbone.model_zoo.googlenet import GoogLeNetDY

    class GoogLeNetMainLogits(GoogLeNetDY):
        def forward(self, inputs):
            return super().forward(inputs)[0]

    return GoogLeNetMainLogits()


ORACLE_BUILDERS["GoogLeNet"] = _googlenet_main_logits
