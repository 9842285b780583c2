"""Mixed-precision training (PaddleClas's `AMP` section) and synchronized BatchNorm (`Arch.use_sync_bn`).

AMP as PaddleClas's engine runs it (`ppcls/engine/engine.py`, `ppcls/utils/amp.py`): the forward pass under
`paddle.amp.auto_cast(level)`, a `paddle.amp.GradScaler(init_loss_scaling=scale_loss, use_dynamic_loss_scaling)`
scaling the loss before backward and unscaling, checking and stepping after it, and at level O2
`paddle.amp.decorate`, which casts the weights to float16 except the normalisation layers' (BatchNorm, LayerNorm
and the like stay float32), gives the optimizer float32 master weights, and makes `state_dict()` float32 so
checkpoints stay PaddleClas pretrained files. Unlike PaddleClas, the loss is computed outside `auto_cast`, on the
outputs cast to float32: at O2 `auto_cast` would run log-softmax in float16.

Paddle implements AMP for GPUs only: on a CPU place (Paddle 3.3.1) `auto_cast`, `GradScaler` and `decorate`
warn and do nothing, bfloat16 included. A GPU recipe (`Global.device: gpu`, as all of PaddleClas's are) placed on
CPU workers (no GPUs in the Ray cluster, or `Ray.use_gpu: false`) therefore trains in float32, and says so: a
warning naming the keys, and `precision` in the run's result. So does a recipe that says `Global.device: cpu` and
asks for AMP (a GPU recipe smoke-tested on a CPU machine with `-o Global.device=cpu`). Sync BN needs nccl and more than one worker; elsewhere it is skipped
with a log line, as PaddleClas skips it off GPUs.
"""

from __future__ import annotations

import contextlib
import logging

import paddle

from ppipe.config.schema import AMPSection

log = logging.getLogger("ppipe.train")


def on_gpu() -> bool:
    """Whether this process computes on a GPU (the place the loop set with `paddle.set_device`)."""
    return paddle.device.get_device().startswith("gpu")


def to_float32(outputs):
    """Model outputs (a tensor, or lists/tuples/dicts of them) with half-precision tensors cast to float32."""
    if isinstance(outputs, dict):
        return {k: to_float32(v) for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(to_float32(v) for v in outputs)
    if isinstance(outputs, paddle.Tensor) and outputs.dtype in (paddle.float16, paddle.bfloat16):
        return outputs.astype("float32")
    return outputs


class GradScaler(paddle.amp.GradScaler):
    """Paddle's GradScaler with its loss-scale update free of `float()` on its [1]-shaped scale tensor.

    Paddle 3.3.1's `_update` formats `float(self._scale)` into a message when it lowers the scale, which NumPy
    >= 2.4 refuses (TypeError: only 0-dimensional arrays can be converted), so the first overflowing step of a
    dynamic-loss-scaling run would crash. Same rule as Paddle's: after `decr_every_n_nan_or_inf` overflows scale *=
    `decr_ratio`, after `incr_every_n_steps` finite steps scale *= `incr_ratio`.
    """

    def _update(self):
        if not self._enable:
            return
        if self._cache_found_inf:
            self._incr_count = 0
            self._decr_count += 1
            if self._decr_count == self._decr_every_n_nan_or_inf:
                log.info("non-finite gradients: loss scale %g -> %g", self._scale.item(),
                         self._scale.item() * self._decr_ratio)
                self._scale = self._scale * self._decr_ratio
                self._decr_count = 0
        else:
            self._decr_count = 0
            self._incr_count += 1
            if self._incr_count == self._incr_every_n_steps:
                self._scale = self._scale * self._incr_ratio
                self._incr_count = 0


class MixedPrecision:
    """One worker's AMP state: the `auto_cast` context, the loss scaler, and the O2 decoration.

    With `AMP.use_amp: false` every method is the plain float32 path (`backward` is `loss.backward()`, `step` is
    `optimizer.step()`), so the loop has one code path.
    """

    def __init__(self, cfg: AMPSection, *, gpu: bool):
        self.enabled = cfg.use_amp
        self.level = cfg.level
        self.use_promote = cfg.use_promote
        self.scaler = None
        self.eval_under_autocast = False
        if not self.enabled:
            return
        if not gpu:
            self.enabled = False
            log.warning(
                "AMP.use_amp: mixed precision (float16, level %s) needs a GPU and this worker runs on %s, where "
                "Paddle's auto_cast and GradScaler do nothing: training in float32. GPU workers (Ray.use_gpu, on "
                "a GPU build of Paddle) train in mixed precision", cfg.level, paddle.device.get_device())
            return
        # PaddleClas's AMP flags: more in-place gradient accumulation; cuDNN's persistent BatchNorm kernels.
        flags = {"FLAGS_max_inplace_grad_add": 8}
        if paddle.is_compiled_with_cuda():
            flags["FLAGS_cudnn_batchnorm_spatial_persistent"] = 1
        paddle.set_flags(flags)
        # At O2 the weights themselves are float16, so evaluation must run under auto_cast too (PaddleClas
        # turns use_fp16_test on for O2 and says so; so does this).
        self.eval_under_autocast = cfg.use_fp16_test or cfg.level == "O2"
        if cfg.level == "O2" and not cfg.use_fp16_test:
            log.warning("AMP.level O2 keeps the weights in float16: evaluation runs in float16 too "
                        "(AMP.use_fp16_test is treated as true)")
        self.scaler = GradScaler(init_loss_scaling=cfg.scale_loss,
                                 use_dynamic_loss_scaling=cfg.use_dynamic_loss_scaling)

    def decorate(self, model: paddle.nn.Layer, optimizer):
        """At O2, cast `model` to float16 (normalisation layers excepted) and give `optimizer` master weights.

        Call it after restoring a checkpoint (whose weights are float32) and before `paddle.DataParallel`.
        """
        if not self.enabled or self.level != "O2":
            return model, optimizer
        return paddle.amp.decorate(models=model, optimizers=optimizer, level="O2", save_dtype="float32")

    @property
    def precision(self) -> str:
        """What this worker trains in, for the run's result: "float32", or "float16 AMP O1/O2"."""
        return f"float16 AMP {self.level}" if self.enabled else "float32"

    def autocast(self, training: bool = True):
        """The context for a forward pass: `auto_cast` in training, and in evaluation when it needs it."""
        if not self.enabled or not (training or self.eval_under_autocast):
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(level=self.level, use_promote=self.use_promote)

    def backward(self, loss: paddle.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer) -> None:
        """Unscale, skip the update if a gradient overflowed, step, and adjust the loss scale."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        """The loss scaler's state (scale, growth counters), which an exact resume needs; {} without AMP."""
        return self.scaler.state_dict() if self.scaler is not None else {}

    def set_state_dict(self, state: dict) -> None:
        if self.scaler is None:
            return
        if not state:
            log.warning("the checkpoint has no loss-scaler state (saved without AMP): starting from "
                        "AMP.scale_loss")
            return
        self.scaler.load_state_dict(state)


class AutocastForward(paddle.nn.Layer):
    """`model` whose forward runs in `precision`'s evaluation context and returns float32: what evaluation
    scores, so that its loss and accuracy are computed in float32 whatever the precision."""

    def __init__(self, model: paddle.nn.Layer, precision: MixedPrecision):
        super().__init__()
        self.model = model
        self._precision = precision

    def forward(self, x):
        with self._precision.autocast(training=self.training):
            outputs = self.model(x)
        return to_float32(outputs)


def for_evaluation(model: paddle.nn.Layer, precision: MixedPrecision) -> paddle.nn.Layer:
    """`model` as evaluation should call it: itself in float32 runs, else wrapped in `AutocastForward`."""
    return AutocastForward(model, precision) if precision.enabled else model


def sync_batchnorm(model: paddle.nn.Layer, use_sync_bn: bool, *, gpu: bool, world: int) -> paddle.nn.Layer:
    """`model` with its BatchNorm layers synchronized over the workers (statistics of the global batch), when
    `use_sync_bn` and the run is on GPUs with more than one worker; `model` unchanged otherwise.

    The converted layers share the original parameters and statistics, so state-dict keys do not change.
    """
    if not use_sync_bn:
        return model
    if not gpu:
        log.warning("Arch.use_sync_bn: SyncBatchNorm needs GPUs (nccl); skipped on this CPU run, BatchNorm stays "
                    "per-worker (its statistics are averaged over workers at epoch end)")
        return model
    if world < 2:
        log.info("Arch.use_sync_bn: one worker, nothing to synchronize; BatchNorm left as is")
        return model
    return paddle.nn.SyncBatchNorm.convert_sync_batchnorm(model)
