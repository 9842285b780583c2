"""Building blocks shared by the zoo's families, named so that PaddleClas checkpoints load as they are."""

from ppipe.models.layers.activations import create_act, register_act
from ppipe.models.layers.channels import make_divisible
from ppipe.models.layers.checkpoint_keys import PADDLECLAS_CONV_BN, classifier_rule, rename_keys
from ppipe.models.layers.classifier import ClassifierHeads, PooledClassifierNet, new_classifier
from ppipe.models.layers.conv_bn_act import ConvBNAct
from ppipe.models.layers.drop_path import DropPath, drop_path, stochastic_depth_rates
from ppipe.models.layers.mlp import Mlp
from ppipe.models.layers.squeeze_excite import SEModule

# Layers added later by one family and shared by others are imported from their own modules
# (`from ppipe.models.layers.split_attention import SplitAttn`), so families never edit this file at once.
__all__ = ["PADDLECLAS_CONV_BN", "ClassifierHeads", "ConvBNAct", "DropPath", "Mlp", "PooledClassifierNet", "SEModule",
           "classifier_rule", "create_act", "drop_path", "make_divisible", "new_classifier", "register_act",
           "rename_keys", "stochastic_depth_rates"]
