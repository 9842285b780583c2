"""Building blocks shared by the zoo's families, named so that PaddleClas checkpoints load as they are."""

from ppipe.models.layers.activations import create_act
from ppipe.models.layers.channels import make_divisible
from ppipe.models.layers.conv_bn_act import ConvBNAct
from ppipe.models.layers.last_conv_head import LastConvHead
from ppipe.models.layers.squeeze_excite import SEModule

__all__ = ["ConvBNAct", "LastConvHead", "SEModule", "create_act", "make_divisible"]
