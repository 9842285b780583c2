"""ppipe's model zoo: PaddleClas architectures under their PaddleClas names, loading PaddleClas checkpoints.

`create_model(name, num_classes, pretrained=path)`, `list_models(pattern)`, `get_spec(name)`; the family modules
imported here register their entrypoints.
"""

from ppipe.models.registry import (DuplicateModelError, UnknownModelError, create_model, get_spec, list_models,
                                   models_table, register_model)
from ppipe.models.spec import ModelSpec, spec
from ppipe.models.weights import CheckpointMismatchError, load_pretrained

from ppipe.models import mobilenetv3, pplcnet  # noqa: E402,F401  (registration)

__all__ = ["CheckpointMismatchError", "DuplicateModelError", "ModelSpec", "UnknownModelError", "create_model",
           "get_spec", "list_models", "load_pretrained", "models_table", "register_model", "spec"]
