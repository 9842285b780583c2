"""An `ExportContext` for the target tests: a zoo model (random weights, eval mode) with its checked PIR export,
random check inputs and their dygraph logits, and optional random calibration batches."""

from __future__ import annotations

import numpy as np

from ppipe.export import export_inference_model, reparameterize
from ppipe.export.targets import ExportContext
from ppipe.models import create_model

QUICKSTART = ("PPLCNet_x0_25", 32, 10)  # the quickstart model: architecture, input side, classes


def settle_batchnorm(model, shape, batch: int = 8) -> None:
    """Give every BatchNorm the statistics of one random batch, then put `model` in eval mode: at initialisation
    (mean 0, variance 1) activations grow layer after layer in some families (GhostNet reaches ~3000 at 32x32),
    where float32 rounding alone exceeds the export checks' relative tolerance; a trained model is normalised."""
    import paddle
    from paddle.nn.layer.norm import _BatchNormBase

    norms = [m for m in model.sublayers() if isinstance(m, _BatchNormBase)]
    momenta = [m._momentum for m in norms]
    for m in norms:
        m._momentum = 0.0  # running statistics := this batch's
    model.train()
    with paddle.no_grad():
        model(paddle.to_tensor(np.random.default_rng(3).standard_normal((batch, *shape)).astype(np.float32)))
    for m, momentum in zip(norms, momenta):
        m._momentum = momentum
    model.eval()


def make_context(tmp_path, name: str = QUICKSTART[0], size: int = QUICKSTART[1], num_classes: int = QUICKSTART[2],
                 *, calibration_batches: int | None = 2, check_batch: int = 2, model=None) -> ExportContext:
    """`model`: a paddle.nn.Layer to use instead of the zoo's `name`."""
    import paddle

    paddle.seed(0)
    model = create_model(name, num_classes=num_classes) if model is None else model
    shape = (3, size, size)
    settle_batchnorm(model, shape)
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


def small_cnn(num_classes: int = 10):
    """Conv, depthwise conv and conv, each with BN and ReLU, and a classifier: a random model whose logits survive
    INT8 (the zoo's random models amplify quantization noise past the INT8 tolerance; trained ones do not)."""
    import paddle

    paddle.seed(0)
    nn = paddle.nn
    return nn.Sequential(nn.Conv2D(3, 8, 3, padding=1), nn.BatchNorm2D(8), nn.ReLU(),
                         nn.Conv2D(8, 8, 3, padding=1, groups=8), nn.BatchNorm2D(8), nn.ReLU(),
                         nn.Conv2D(8, 16, 3, stride=2, padding=1), nn.BatchNorm2D(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Linear(16, num_classes))
