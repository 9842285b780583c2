"""An `ExportContext` for the target tests: a zoo model (random weights, eval mode) with its checked PIR export,
random check inputs and their dygraph logits, and optional random calibration batches."""

from __future__ import annotations

import numpy as np

from ppipe.export import export_inference_model, reparameterize
from ppipe.export.targets import ExportContext
from ppipe.models import create_model

QUICKSTART = ("PPLCNet_x0_25", 32, 10)  # the quickstart model: architecture, input side, classes


def make_context(tmp_path, name: str = QUICKSTART[0], size: int = QUICKSTART[1], num_classes: int = QUICKSTART[2],
                 *, calibration_batches: int | None = 2, check_batch: int = 2) -> ExportContext:
    import paddle

    paddle.seed(0)
    model = create_model(name, num_classes=num_classes)
    model.eval()
    shape = (3, size, size)
    export_inference_model(model, str(tmp_path / "reference"), shape)
    reparameterize(model)
    model.eval()
    x = np.random.default_rng(1).standard_normal((check_batch, *shape)).astype(np.float32)
    with paddle.no_grad():
        logits = model(paddle.to_tensor(x)).numpy()

    def calibration():
        rng = np.random.default_rng(2)
        for _ in range(calibration_batches or 0):
            yield rng.standard_normal((4, *shape)).astype(np.float32)

    return ExportContext(model=model, input_shape=shape, out_root=str(tmp_path / "export"),
                         reference_dir=str(tmp_path / "reference"), check_inputs=x, reference_logits=logits,
                         calibration=calibration if calibration_batches else None)
