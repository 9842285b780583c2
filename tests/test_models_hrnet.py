"""HRNet: squeeze-and-excitation only in the SE variant; branch fusion at input sizes PaddleClas cannot take."""

from __future__ import annotations

import numpy as np
import paddle

from ppipe.models import create_model
from ppipe.models.hrnet import HRNet


def test_se_hrnet_has_se_in_every_residual_block_and_plain_hrnet_none():
    se_keys = [k for k in HRNet(width=18, has_se=True).state_dict() if ".se." in k]
    plain = HRNet(width=18).state_dict()
    assert not any(".se." in k for k in plain)
    # 4 layer1 bottlenecks + 4 head bottlenecks + 4 basic blocks per branch per module (1x2 + 4x3 + 3x4 branches)
    assert len(se_keys) == 4 * (4 + 4 + 4 * (1 * 2 + 4 * 3 + 3 * 4))
    assert "layer1.0.se.conv1.weight" in se_keys  # SEModule's names; PaddleClas's `fc_squeeze` renames by rule


def test_branches_fuse_at_input_sizes_not_divisible_by_32():
    # PaddleClas upsamples by 2**k and fails when a halving rounded up; resizing to the target branch does not.
    model = create_model("HRNet_W18_C", num_classes=5)
    model.eval()
    out = model(paddle.randn([1, 3, 48, 80]))
    assert out.shape == [1, 5] and np.isfinite(out.numpy()).all()
