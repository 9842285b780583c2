"""PaddleClas-compatible augmentation operators, one module per job: the AutoAugment/RandAugment policies
(`autoaugment`, `timm_autoaugment`), erasing and masking (`masking`) and colour (`colour`). Importing this
package registers them with `ppipe.data.operators.OPERATORS`.

Semantics follow PaddleClas 2.6 (`ppcls/data/preprocess/ops/`); this is our own code. Every random draw comes from
the operator's `self.rng` (the pipeline's shared `random.Random`, see `transforms.Compose`), never from the global
`random`/`numpy.random` state, so a seeded pipeline reproduces.
"""

from ppipe.data.augment.autoaugment import AutoAugment, RandAugment
from ppipe.data.augment.colour import ColorJitter, PCALighting
from ppipe.data.augment.masking import Cutout, GridMask, HideAndSeek, RandomErasing
from ppipe.data.augment.timm_autoaugment import TimmAutoAugment

__all__ = ["AutoAugment", "RandAugment", "TimmAutoAugment", "RandomErasing", "Cutout", "GridMask", "HideAndSeek",
           "ColorJitter", "PCALighting"]
