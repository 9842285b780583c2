"""ppipe's model zoo: PaddleClas architectures under their PaddleClas names, loading PaddleClas checkpoints.

`create_model(name, num_classes, pretrained=path)`, `list_models(pattern)`, `get_spec(name)`; every family module
in this package is imported and registers its entrypoints.
"""

from ppipe.models.registry import (DuplicateModelError, UnknownModelError, create_model, get_spec, list_models,
                                   models_table, register_model)
from ppipe.models.spec import ModelSpec, spec
from ppipe.models.weights import CheckpointMismatchError, load_pretrained


def _import_families() -> None:
    """Import every family module in this package (each registers its entrypoints on import), so adding a
    family is adding its file."""
    import importlib
    import pkgutil

    infrastructure = {"registry", "spec", "weights", "layers", "distillation", "feature_taps", "composite",
                      "afd_attention"}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name not in infrastructure and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_import_families()

__all__ = ["CheckpointMismatchError", "DuplicateModelError", "ModelSpec", "UnknownModelError", "create_model",
           "get_spec", "list_models", "load_pretrained", "models_table", "register_model", "spec"]
