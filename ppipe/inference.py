"""Run an exported (or pulled) inference model with Paddle Inference on the CPU.

    from ppipe.inference import create_predictor, predict
    p = create_predictor("pulled/paddle-inference-mkldnn")  # model.json + model.pdiparams (+ predictor.json)
    logits = predict(p, batch)                               # float32 [N, C, H, W] -> logits [N, num_classes]

A target folder may ship `predictor.json` (`PredictorSettings`: the predictor configuration the export tuned and
measured); `create_predictor` applies it as is, and explicit arguments override it.

Two CPU engines, both inside Paddle Inference: `onednn` (Paddle's own operators on oneDNN kernels, for the PIR
``model.json`` or a legacy ``model.pdmodel``) and `openvino` (Paddle Inference's OpenVINO engine: the legacy
program converted whole by OpenVINO's Paddle front end and compiled by its CPU plugin, itself built on oneDNN;
the x86 ``paddlepaddle`` wheel ships it). Where a Paddle build lacks OpenVINO, an `openvino` folder runs its legacy
program on `onednn` instead, with a warning, so a pulled folder always loads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from ppipe.native_output import PADDLE_PASS_SUMMARY, filtered_native_output

__all__ = ["InferenceError", "PredictorSettings", "PREDICTOR_FILE", "ENGINES", "find_model_files", "load_settings",
           "create_predictor", "openvino_available", "predict"]

PREDICTOR_FILE = "predictor.json"
ENGINES = ("onednn", "openvino")

log = logging.getLogger(__name__)


class InferenceError(Exception):
    """The model folder is unusable or the predictor failed."""


@dataclass(frozen=True)
class PredictorSettings:
    """How a Paddle Inference CPU predictor is configured (`predictor.json` in a target folder)."""

    mkldnn: bool = True                 # oneDNN kernels: about 10x the plain CPU predictor on x86
    int8: bool = False                  # oneDNN INT8 kernels for a quantized (quantize/dequantize) program
    threads: int = 1                    # CPU math threads
    # oneDNN primitives are cached per input shape; a bound keeps a server fed many shapes from growing without
    # limit (0: unbounded, Paddle's default).
    mkldnn_cache_capacity: int = 10
    ir_optim: bool = True               # Paddle's graph passes (conv+bn folding, operator fusion)
    # Reuse intermediate buffers. Off: on Paddle 3.3.1 a PIR program with it on fails to load ("Not find
    # predictor_id 0 and pass_name memory_optimize_pass").
    memory_optim: bool = False
    deleted_passes: tuple[str, ...] = ()  # IR passes to switch off (a pass that slows or breaks a model)
    # `onednn` or `openvino` (see the module's doc; `openvino` needs the legacy program, model.pdmodel)
    engine: str = "onednn"

    @classmethod
    def from_dict(cls, data: dict, where: str) -> "PredictorSettings":
        if not isinstance(data, dict):
            raise InferenceError(f"{where}: expected a JSON object of predictor settings, got {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InferenceError(f"{where}: unknown predictor setting(s) {unknown}; known: {sorted(known)}")
        values = dict(data)
        for f in dataclasses.fields(cls):  # JSON gives any type: "threads": "2" or "mkldnn": "no" are refused
            if f.name in values and not _is_a(values[f.name], f.default):
                raise InferenceError(f"{where}: {f.name} must be {_TYPE_NAMES[type(f.default)]}, got "
                                     f"{values[f.name]!r}")
        if "deleted_passes" in values:
            values["deleted_passes"] = tuple(values["deleted_passes"])
        settings = cls(**values)
        if settings.threads < 1 or settings.mkldnn_cache_capacity < 0:
            raise InferenceError(f"{where}: threads must be >= 1 and mkldnn_cache_capacity >= 0, got {data}")
        if settings.engine not in ENGINES:
            raise InferenceError(f"{where}: engine must be one of {list(ENGINES)}, got {settings.engine!r}")
        if settings.engine == "openvino" and settings.int8:
            raise InferenceError(f"{where}: the openvino engine runs FP32 programs only; int8 needs engine onednn")
        return settings

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["deleted_passes"] = list(self.deleted_passes)
        return d


_TYPE_NAMES = {bool: "true or false", int: "an integer", str: "a string", tuple: "a list of strings"}


def _is_a(value, default) -> bool:
    """Whether a JSON `value` has the type of the setting whose default is `default` (a bool is no integer)."""
    if isinstance(default, tuple):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    return isinstance(value, type(default))


def find_model_files(model_dir: str) -> tuple[str, str]:
    """(model file, params file) in `model_dir`: ``model.json`` (PIR) or ``model.pdmodel`` (legacy), plus
    ``model.pdiparams``; a folder holding exactly one ``*.json``/``*.pdmodel`` with its ``.pdiparams`` also works."""
    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise InferenceError(f"model folder not found: {model_dir}")
    for prog in ("model.json", "model.pdmodel"):
        if os.path.isfile(os.path.join(model_dir, prog)):
            stem = "model"
            break
    else:
        names = sorted(os.listdir(model_dir))
        stems = [n.rsplit(".", 1)[0] for n in names
                 if n.endswith((".json", ".pdmodel")) and n != PREDICTOR_FILE
                 and n.rsplit(".", 1)[0] + ".pdiparams" in names]
        if len(stems) != 1:
            raise InferenceError(f"{model_dir}: expected model.json (or model.pdmodel) and model.pdiparams; "
                                 f"found {names}")
        stem = stems[0]
        prog = next(n for n in names if n.rsplit(".", 1)[0] == stem and n.endswith((".json", ".pdmodel")))
    params = os.path.join(model_dir, stem + ".pdiparams")
    if not os.path.isfile(params):
        raise InferenceError(f"{model_dir}: {prog} has no parameters file {stem}.pdiparams")
    return os.path.join(model_dir, prog), params


def load_settings(model_dir: str) -> PredictorSettings:
    """The folder's `predictor.json`, or the defaults when it has none."""
    path = os.path.join(os.fspath(model_dir), PREDICTOR_FILE)
    if not os.path.isfile(path):
        return PredictorSettings()
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise InferenceError(f"{path}: not a readable JSON file: {e}") from e
    return PredictorSettings.from_dict(data, path)


def create_predictor(model_dir: str, *, mkldnn: bool | None = None, threads: int | None = None,
                     settings: PredictorSettings | None = None, glog_info: bool = False):
    """A Paddle Inference predictor for the model in `model_dir`, on the CPU.

    Configured by `settings`, else by the folder's `predictor.json`, else by `PredictorSettings()`; `mkldnn`
    and `threads`, when given, override that. `glog_info`: leave Paddle's glog info lines on (off by default:
    dozens of pass lines per predictor).
    """
    model_file, params_file = find_model_files(model_dir)
    s = settings or load_settings(model_dir)
    s = dataclasses.replace(s, **{k: v for k, v in (("mkldnn", mkldnn), ("threads", threads)) if v is not None})
    openvino = s.engine == "openvino" and openvino_available()
    if s.engine == "openvino":
        if not model_file.endswith(".pdmodel"):
            raise InferenceError(f"{model_dir}: the openvino engine needs the legacy program (model.pdmodel); "
                                 f"the folder has {os.path.basename(model_file)}")
        if not openvino:
            log.warning("%s: this Paddle build has no OpenVINO engine; running the legacy program on oneDNN "
                        "instead", model_dir)
    # OpenVINO writes the model it compiles to a cache folder (Paddle's default: `__cache__` in the working
    # directory), at creation; compiling takes well under a second here, so each predictor gets a private folder
    # removed once it exists: no litter, and no two processes (Ray workers) writing one cache file at once.
    with tempfile.TemporaryDirectory(prefix="ppipe-openvino-") if openvino else contextlib.nullcontext() as tmp:
        try:
            return _create(_config(model_file, params_file, s, openvino_cache=tmp, glog_info=glog_info), s)
        except InferenceError as e:  # give the folder in the message
            raise InferenceError(f"cannot create a predictor for {model_dir}: {e}") from e


@functools.cache
def openvino_available() -> bool:
    """Whether this Paddle build carries Paddle Inference's OpenVINO engine: the x86 ``paddlepaddle`` wheel ships
    OpenVINO's runtime and Paddle front end beside its own libraries (``paddle/libs``); Paddle has no API that
    says so, and enabling the engine in a build without it is not an error."""
    import paddle

    libs = os.path.join(os.path.dirname(paddle.__file__), "libs")
    try:
        return any(n.startswith("libopenvino_paddle_frontend.so") for n in os.listdir(libs))
    except OSError:
        return False


def _config(model_file: str, params_file: str, s: PredictorSettings, *, openvino_cache: str | None,
            glog_info: bool = False):
    """Paddle Inference's Config for `s`; the OpenVINO engine when `openvino_cache` (its cache folder) is given."""
    from paddle import inference as pi

    config = pi.Config(model_file, params_file)
    config.disable_gpu()
    if not glog_info:
        config.disable_glog_info()
    config.set_cpu_math_library_num_threads(max(1, int(s.threads)))
    config.switch_ir_optim(s.ir_optim)
    if s.memory_optim:
        config.enable_memory_optim()
    if not s.mkldnn or openvino_cache:
        # Paddle 3.3.1 turns oneDNN on by default on x86. The OpenVINO engine runs the whole program, and with
        # oneDNN on, each run leaves Paddle's OpenMP threads spinning (KMP_BLOCKTIME, 200 ms) beside OpenVINO's own:
        # ResNet50 ran at 0.89x ONNX Runtime's speed at batch 1 with it, 0.94x without (interleaved, same process;
        # equal with KMP_BLOCKTIME=0)
        config.disable_mkldnn()
    else:
        config.enable_mkldnn()
        config.set_mkldnn_cache_capacity(s.mkldnn_cache_capacity)
        if s.int8:
            config.enable_mkldnn_int8()
    for name in s.deleted_passes:
        config.delete_pass(name)
    if openvino_cache:
        config.enable_new_ir(False)  # the engine converts legacy programs only
        config.enable_openvino_engine(pi.PrecisionType.Float32)
        config.set_optim_cache_dir(openvino_cache)
    return config


def _create(config, s: PredictorSettings):
    from paddle import inference as pi

    try:
        if not s.int8:
            predictor = pi.create_predictor(config)
        else:
            with filtered_native_output(PADDLE_PASS_SUMMARY):  # the INT8 passes' ~30 summary lines, unless --verbose
                predictor = pi.create_predictor(config)
    except Exception as e:  # noqa: BLE001 - Paddle raises a different type per failing pass or kernel
        raise InferenceError(str(e)) from e
    return predictor


def predict(predictor, batch: np.ndarray) -> np.ndarray:
    """Run `batch` (float32 [N, C, H, W]) through `predictor`; return its first output (the logits)."""
    x = np.ascontiguousarray(np.asarray(batch, dtype=np.float32))
    names = predictor.get_input_names()
    if len(names) != 1:
        raise InferenceError(f"expected a model with one input, it has {names}")
    handle = predictor.get_input_handle(names[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    try:
        predictor.run()
    except Exception as e:  # noqa: BLE001 - Paddle raises a different type per failing kernel
        raise InferenceError(f"the predictor failed on a {list(x.shape)} float32 batch: {e}") from e
    logits = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    if logits.ndim == 0 or logits.shape[0] != x.shape[0]:
        # Paddle's OpenVINO engine logs a failed inference (e.g. a size other than the one exported) and returns
        # an empty output instead of raising
        raise InferenceError(f"the predictor returned logits of shape {list(logits.shape)} for a {list(x.shape)} "
                             "batch: it failed (see the engine's error above); an OpenVINO engine takes only the "
                             "image size the model was exported for")
    return logits
