"""The tensorrt export target (what a GPU node needs to build an engine) and `ppipe deploy tensorrt` where there is
no TensorRT or GPU (this machine), and around a stand-in for TensorRT's API (ONNX Runtime runs the "engine"):
tests/gpu/check_tensorrt.py builds real engines."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import types

import numpy as np
import pytest

from ppipe.cli import main
from ppipe.export import tensorrt_engine
from ppipe.export.tensorrt import apply_paddle_trt_config, tensorrt_target
from tests.export_context import make_context, small_cnn


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    ctx = make_context(tmp_path_factory.mktemp("trt"))
    return ctx, tensorrt_target(ctx)


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setattr(tensorrt_engine, "tensorrt_unavailable", lambda: "TensorRT is not installed (test)")


def _load(ctx, name):
    with open(os.path.join(ctx.out_root, "tensorrt", name)) as f:
        return json.load(f)


def test_spec_gives_precision_shapes_workspace_and_the_checked_onnx(exported):
    ctx, result = exported
    assert result.status == "built", result.reason
    assert result.check["max_rel_err"] <= result.check["rtol"]
    spec = _load(ctx, "build_spec.json")
    assert spec["precision"] in spec["precisions"] == ["fp32", "fp16", "int8"]
    assert spec["shapes"] == {"min": [1, 3, 32, 32], "opt": [8, 3, 32, 32], "max": [32, 3, 32, 32]}
    assert spec["workspace_bytes"] > 0
    folder = os.path.join(ctx.out_root, "tensorrt")
    np.testing.assert_array_equal(np.load(os.path.join(folder, "check_inputs.npy")), ctx.check_inputs)
    assert f"tensorrt/{spec['onnx']}" in result.files
    assert result.check["int8_explicit"] == spec["calibration"]["explicit"]  # the manifest says what the spec does


def test_without_tensorrt_calibration_is_the_images_plus_onnxruntime_ranges_and_says_so(exported):
    import onnx

    ctx, result = exported
    calibration = _load(ctx, "build_spec.json")["calibration"]
    if calibration["kind"] == "tensorrt-cache":
        pytest.skip("TensorRT and a GPU are here: the export wrote TensorRT's own cache")
    assert calibration["kind"] == "onnxruntime-ranges" and "no TensorRT calibration cache" in calibration["reason"]
    images = np.load(os.path.join(ctx.out_root, "tensorrt", calibration["images_file"]))
    assert images.shape == (8, 3, 32, 32) and calibration["images"] == 8  # 2 batches of 4 from the context
    ranges = _load(ctx, calibration["ranges_file"])
    assert ranges["format"] == "ppipe-onnxruntime-ranges/1" and ranges["method"] == "MinMax"
    logits = onnx.load(os.path.join(ctx.out_root, "tensorrt", "model.onnx")).graph.output[0].name
    r = ranges["tensors"][logits]
    assert r["min"] <= r["max"] and r["amax"] == max(abs(r["min"]), abs(r["max"])) > 0


def test_no_calibration_source_writes_no_int8_calibration_and_says_why(exported, tmp_path):
    ctx, _ = exported
    result = tensorrt_target(dataclasses.replace(ctx, out_root=str(tmp_path), calibration=None))
    assert result.status == "built"
    with open(tmp_path / "tensorrt" / "build_spec.json") as f:
        calibration = json.load(f)["calibration"]
    assert calibration["kind"] == "none" and "INT8" in calibration["reason"]
    assert not any("calibration" in f for f in result.files)


def test_paddle_trt_config_turns_on_tensorrt_with_the_dynamic_shapes(exported):
    ctx, _ = exported
    spec = _load(ctx, "paddle_trt_config.json")
    calls = {}

    class RecordingConfig:  # the calls a GPU build's paddle.inference.Config receives
        def enable_use_gpu(self, memory_mb, device_id):
            calls["gpu"] = (memory_mb, device_id)

        def enable_new_ir(self, on):
            calls["new_ir"] = on

        def enable_tensorrt_engine(self, **kw):
            calls["trt"] = kw

        def set_trt_dynamic_shape_info(self, lo, hi, opt):
            calls["shapes"] = (lo, hi, opt)

    class PrecisionType:
        Float32, Half, Int8 = "f32", "f16", "i8"

    apply_paddle_trt_config(RecordingConfig(), spec, PrecisionType)
    assert calls["trt"]["precision_mode"] == "f16" and calls["trt"]["max_batch_size"] == 32
    assert calls["shapes"] == ({"x": [1, 3, 32, 32]}, {"x": [32, 3, 32, 32]}, {"x": [8, 3, 32, 32]})
    assert calls["new_ir"] is False  # TensorRT subgraphs come from the legacy IR's passes
    assert spec["program"] == "legacy"
    assert os.path.isfile(os.path.join(ctx.out_root, "tensorrt", spec["model_dir"], "model.pdmodel"))


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_paddle_trt_config_binds_to_this_paddles_config(exported, precision):
    """Each call `apply_paddle_trt_config` makes, with its keywords, reaches the installed Paddle's real
    `paddle.inference.Config` (pybind refuses an unknown keyword with TypeError); a CPU build then refuses
    TensorRT itself ("compile with TENSORRT"), which is what is expected here."""
    from paddle import inference as pi

    from ppipe.export.tensorrt import paddle_trt_config

    class Forwarding:
        def __init__(self):
            self.config, self.called = pi.Config(), []

        def __getattr__(self, name):
            def call(*args, **kwargs):
                self.called.append(name)
                try:
                    return getattr(self.config, name)(*args, **kwargs)
                except RuntimeError as e:
                    if "TENSORRT" not in str(e):
                        raise
            return call

    ctx, _ = exported
    spec = paddle_trt_config((3, 32, 32), _load(ctx, "paddle_trt_config.json")["model_dir"], precision)
    forwarding = Forwarding()
    apply_paddle_trt_config(forwarding, spec)
    assert forwarding.called == ["enable_use_gpu", "enable_new_ir", "enable_tensorrt_engine",
                                 "set_trt_dynamic_shape_info"]


def test_deploy_without_tensorrt_exits_nonzero_and_json_says_skipped(exported, no_tensorrt, capsys):
    ctx, _ = exported
    with pytest.raises(SystemExit) as exit_info:
        main(["deploy", "tensorrt", ctx.out_root, "--json"])
    assert exit_info.value.code == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "skipped" and "TensorRT is not installed" in doc["reason"]
    assert not any(n.endswith(".plan") for n in os.listdir(os.path.join(ctx.out_root, "tensorrt")))


def test_deploy_without_tensorrt_prints_one_line_saying_it_did_not_run(exported, no_tensorrt, capsys):
    ctx, _ = exported
    with pytest.raises(SystemExit) as exit_info:
        main(["deploy", "tensorrt", os.path.join(ctx.out_root, "tensorrt")])
    assert exit_info.value.code == 3
    out = capsys.readouterr()
    assert out.out == "" and out.err.strip().count("\n") == 0 and "not built" in out.err


def test_deploy_finds_the_target_in_a_pulled_artifact(exported, no_tensorrt, tmp_path, capsys):
    """A published artifact (and so what `ppipe artifacts pull` writes, and a run folder) keeps the targets under
    export/: `ppipe deploy tensorrt PULLED` finds export/tensorrt/ there."""
    ctx, _ = exported
    pulled = tmp_path / "pulled"
    shutil.copytree(ctx.out_root, pulled / "export")
    with pytest.raises(SystemExit) as exit_info:
        main(["deploy", "tensorrt", str(pulled), "--json"])
    assert exit_info.value.code == 3  # found, and then skipped: no TensorRT here
    assert json.loads(capsys.readouterr().out)["status"] == "skipped"


def test_deploy_names_a_folder_that_is_not_a_tensorrt_export(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["deploy", "tensorrt", str(tmp_path)])
    assert exit_info.value.code == 2
    assert str(tmp_path) in capsys.readouterr().err


def _as_polygraphy(real, fake, *more_signatures):
    """`fake`, refusing a call that Polygraphy's `real` would refuse (an unknown keyword, a missing argument):
    the stand-in is held to the installed Polygraphy's signatures, so ppipe cannot call an API that is not
    there. `more_signatures`: where `real` passes **kwargs on (CreateConfig to its base class)."""
    import inspect

    def call(*args, **kwargs):
        inspect.signature(real).bind(*args, **kwargs)
        passed_on = {k: v for k, v in kwargs.items() if k not in inspect.signature(real).parameters}
        for signature in more_signatures:  # takes what `real` passes on, as `self` plus keywords
            inspect.signature(signature).bind(None, **passed_on)
        return fake(*args, **kwargs)

    return call


class _StandIn:
    """TensorRT's and Polygraphy's API as `ppipe.export.tensorrt_engine` calls it, with ONNX Runtime running the
    "engine": what `deploy_tensorrt` does around TensorRT (spec, calibration choice, plan file, logits check,
    measurements) runs here; TensorRT itself runs only in tests/gpu/check_tensorrt.py. Each stand-in checks its
    call against the real Polygraphy (installed with paddle2onnx), names and signatures."""

    def __init__(self, skew: float = 0.0, version: str = "10.5.0"):
        import importlib
        import types

        from polygraphy.backend import trt as real

        real_config = importlib.import_module("polygraphy.backend.trt.config")  # the package's `config` is another

        self.skew, self.configs, self.calibrators, self.networks = skew, [], [], []
        trt = types.ModuleType("tensorrt")
        trt.__version__ = version
        trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
        trt.IInt8EntropyCalibrator2 = type("IInt8EntropyCalibrator2", (), {})
        backend = types.ModuleType("polygraphy.backend.trt")
        backend.Profile = lambda: _Profile(real.Profile)
        backend.Calibrator = _as_polygraphy(real.Calibrator, self._calibrator)
        backend.CreateConfig = _as_polygraphy(real.CreateConfig, lambda **kw: self.configs.append(kw) or kw,
                                              real_config._CreateConfigCommon.__init__)
        backend.network_from_onnx_path = _as_polygraphy(real.network_from_onnx_path, self._network)
        backend.engine_from_network = _as_polygraphy(real.engine_from_network, self._engine)
        backend.bytes_from_engine = _as_polygraphy(
            real.bytes_from_engine, lambda engine: b"plan of " + os.path.basename(engine["onnx"]).encode())
        backend.TrtRunner = _as_polygraphy(real.TrtRunner,
                                           lambda engine: _Runner(engine["onnx"], self.skew, real.TrtRunner))
        self.modules = {"tensorrt": trt, "polygraphy.backend.trt": backend}


    def _network(self, path, strongly_typed=False):
        self.networks.append({"onnx": path, "strongly_typed": strongly_typed})
        return self.networks[-1]

    def _calibrator(self, data_loader, cache, BaseClass):  # noqa: N803 - Polygraphy's keyword
        self.calibrators.append({"batches": [b["x"].shape for b in data_loader], "cache": cache,
                                 "base": BaseClass.__name__})
        return self.calibrators[-1]

    @staticmethod
    def _engine(network, config):
        calibrator = config["calibrator"]
        if config["int8"] and calibrator["batches"]:  # TensorRT writes the cache once it has calibrated
            with open(calibrator["cache"], "wb") as f:
                f.write(b"stand-in calibration cache")
        elif config["int8"]:  # an empty loader: TensorRT reads the cache, and fails without one
            assert os.path.getsize(calibrator["cache"]) > 0
        return {**network, "config": config}


class _Profile(dict):
    def __init__(self, real):
        super().__init__()
        self.real = real

    def add(self, name, min, opt, max):  # noqa: A002 - Polygraphy's keyword names
        _as_polygraphy(self.real.add, lambda *a, **k: None)(self, name, min=min, opt=opt, max=max)
        self[name] = (min, opt, max)
        return self


class _Runner:
    """TrtRunner as a context manager with `infer`, ONNX Runtime inside; any other attribute ppipe asks for is
    looked up on the real TrtRunner first, so a method TrtRunner lacks fails here as it would on a GPU."""

    def __init__(self, onnx_path: str, skew: float, real):
        import onnxruntime as ort

        self.session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        self.skew, self.real = skew, real

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def infer(self, feed_dict, check_inputs=True):
        _as_polygraphy(self.real.infer, lambda *a, **k: None)(self, feed_dict, check_inputs=check_inputs)
        return {self.session.get_outputs()[0].name: self.session.run(None, feed_dict)[0] * (1.0 + self.skew)}

    def __getattr__(self, name):
        if name == "real" or not hasattr(self.real, name):
            raise AttributeError(f"'TrtRunner' object has no attribute '{name}'")
        raise NotImplementedError(f"the stand-in does not play TrtRunner.{name}; add it here")


def test_the_stand_in_refuses_what_polygraphy_refuses():
    stand_in = _StandIn()
    backend = stand_in.modules["polygraphy.backend.trt"]
    with pytest.raises(TypeError):
        backend.CreateConfig(fp16=True, workspace=1 << 30)  # Polygraphy < 0.38's keyword, gone
    runner = object.__new__(_Runner)
    runner.real = __import__("polygraphy.backend.trt", fromlist=["TrtRunner"]).TrtRunner
    with pytest.raises(AttributeError, match="get_output_metadata"):  # what ppipe called before this test
        getattr(runner, "get_output_metadata")


@pytest.fixture
def trt_stand_in(monkeypatch):
    def install(skew: float = 0.0, version: str = "10.5.0") -> _StandIn:
        stand_in = _StandIn(skew, version)
        for name, module in stand_in.modules.items():
            monkeypatch.setitem(sys.modules, name, module)
        monkeypatch.setattr(tensorrt_engine, "tensorrt_unavailable", lambda: None)
        return stand_in

    return install


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_deploy_builds_from_the_spec_writes_the_plan_and_checks_its_logits(exported, trt_stand_in, precision,
                                                                          tmp_path):
    ctx, _ = exported
    stand_in = trt_stand_in()
    export = shutil.copytree(ctx.out_root, tmp_path / "export")  # the module's export keeps no plan file
    folder = os.path.join(export, "tensorrt")
    spec = _load(ctx, "build_spec.json")
    result = tensorrt_engine.deploy_tensorrt(str(export), precision=precision)
    assert result["status"] == "built", result["reason"]
    assert result["engine"] == os.path.join(folder, f"engine_{precision}.plan")
    with open(result["engine"], "rb") as f:
        assert f.read() == b"plan of " + spec["onnx"].encode()
    assert not [n for n in os.listdir(folder) if ".tmp" in n]
    assert result["check"]["passed"] and result["check"]["max_rel_err"] <= result["check"]["rtol"]
    assert result["check"]["rtol"] == spec["rtol"][precision]
    assert result["measurements"]["latency_ms_b1"] > 0 and result["measurements"]["throughput_b32"] > 0
    config = stand_in.configs[-1]
    assert (config["fp16"], config["int8"]) == (precision != "fp32", precision == "int8")
    assert config["profiles"][0]["x"] == (spec["shapes"]["min"], spec["shapes"]["opt"], spec["shapes"]["max"])
    assert config["memory_pool_limits"] == {"workspace": spec["workspace_bytes"]}
    if precision == "int8":  # no TensorRT cache from this export: TensorRT calibrates on the exported images
        assert result["check"]["calibration"] == "IInt8EntropyCalibrator2 on calibration images"
        assert stand_in.calibrators == [{"batches": [(8, 3, 32, 32)], "base": "IInt8EntropyCalibrator2",
                                         "cache": os.path.join(folder, "calibration.cache")}]
        assert os.path.getsize(os.path.join(folder, "calibration.cache")) > 0
    else:
        assert config["calibrator"] is None and not stand_in.calibrators


def test_deploy_fails_an_engine_whose_logits_disagree_writes_no_plan_and_exits_nonzero(exported, trt_stand_in, capsys,
                                                                           tmp_path):
    ctx, _ = exported
    trt_stand_in(skew=0.5)
    export = shutil.copytree(ctx.out_root, tmp_path / "export")
    with pytest.raises(SystemExit) as exit_info:
        main(["deploy", "tensorrt", str(export), "--precision", "fp32", "--json"])
    assert exit_info.value.code != 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "failed" and "disagree with the dygraph model" in doc["reason"]
    assert doc["engine"] is None and not any(n.endswith(".plan") for n in os.listdir(export / "tensorrt"))


def test_with_tensorrt_the_export_writes_its_cache_and_int8_deploys_from_it(exported, trt_stand_in, tmp_path):
    ctx, _ = exported
    stand_in = trt_stand_in()
    result = tensorrt_target(dataclasses.replace(ctx, out_root=str(tmp_path)))
    assert result.status == "built", result.reason
    with open(tmp_path / "tensorrt" / "build_spec.json") as f:
        calibration = json.load(f)["calibration"]
    assert calibration["kind"] == "tensorrt-cache" and calibration["calibrator"] == "IInt8EntropyCalibrator2"
    assert (tmp_path / "tensorrt" / calibration["cache_file"]).stat().st_size > 0
    assert not (tmp_path / "tensorrt" / "calibration_ranges.json").exists()
    deployed = tensorrt_engine.deploy_tensorrt(str(tmp_path), precision="int8")
    assert deployed["status"] == "built" and deployed["check"]["calibration"] == "calibration cache"
    assert stand_in.calibrators[-1]["batches"] == []  # the cache alone calibrates: no images fed


@pytest.mark.parametrize("edit, message", [
    (lambda spec: "{not json", "not a readable JSON build specification"),
    (lambda spec: [spec], "format is 'list'"),
    (lambda spec: {**spec, "format": "ppipe-tensorrt-build/0"}, "expected 'ppipe-tensorrt-build/1'"),
    (lambda spec: {**spec, "shapes": {**spec["shapes"], "opt": [8, 3, 32]}}, "shapes must hold min, opt and max"),
    (lambda spec: {**spec, "shapes": {**spec["shapes"], "min": [64, 3, 32, 32]}}, "min <= opt <= max"),
    (lambda spec: {**spec, "shapes": {**spec["shapes"], "max": [32, 3, 64, 64]}}, "differ only in the batch"),
    (lambda spec: {**spec, "precision": "int4"}, "precision must be one of fp32, fp16, int8, got 'int4'"),
    (lambda spec: {**spec, "rtol": {"fp32": 1e-3}}, "rtol must give a positive tolerance"),
    (lambda spec: {**spec, "workspace_bytes": "1G"}, "workspace_bytes must be a positive integer"),
    (lambda spec: {k: v for k, v in spec.items() if k != "input"}, "input (the ONNX input's name)"),
    (lambda spec: {**spec, "onnx": "missing.onnx"}, "onnx must name a file"),
    (lambda spec: {**spec, "check": {"inputs": "check_inputs.npy"}}, "check.logits must name a file"),
    (lambda spec: {**spec, "calibration": {**spec["calibration"], "explicit": "qdq.onnx"}},
     "calibration.explicit must be an object"),
    (lambda spec: {**spec, "calibration": {**spec["calibration"], "explicit": {"onnx": "gone.onnx"}}},
     "calibration.explicit.onnx must name a file"),
])
def test_deploy_refuses_a_build_spec_it_cannot_follow_naming_the_file_and_field(exported, tmp_path, capsys,
                                                                                  edit, message):
    ctx, _ = exported
    export = shutil.copytree(ctx.out_root, tmp_path / "export")
    spec_file = export / "tensorrt" / "build_spec.json"
    edited = edit(json.loads(spec_file.read_text()))
    spec_file.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    with pytest.raises(SystemExit) as exit_info:  # before TensorRT is looked for: the same here and on a GPU
        main(["deploy", "tensorrt", str(export), "--json"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert str(spec_file) in err and message in err and err.strip().count("\n") == 0


@pytest.mark.parametrize("version, usable", [("10.5.0", True), ("10.16.1.11", True), ("11.4.0.106", True),
                                             ("8.6.1", False)])
def test_tensorrt_10_and_11_build_and_older_is_refused_with_the_version_to_install(monkeypatch, version, usable):

    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.Logger = type("Logger", (), {"ERROR": 1, "__init__": lambda self, severity: None})
    trt.Builder = lambda logger: object()  # what a GPU gives; without one TensorRT raises
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    reason = tensorrt_engine.tensorrt_unavailable()
    if usable:
        assert reason is None
    else:
        assert f"TensorRT {version} is installed" in reason and tensorrt_engine.TENSORRT_REQUIREMENT in reason


@pytest.fixture(scope="module")
def qdq_exported(tmp_path_factory):
    ctx = make_context(tmp_path_factory.mktemp("qdq"), size=16, model=small_cnn())
    return ctx, tensorrt_target(ctx)


def _explicit(ctx) -> dict:
    return _load(ctx, "build_spec.json")["calibration"]["explicit"]


def test_export_writes_a_checked_qdq_model_in_the_form_tensorrt_takes(qdq_exported):
    import onnx
    from onnx import numpy_helper

    ctx, result = qdq_exported
    assert result.status == "built", result.reason
    explicit = _explicit(ctx)
    assert explicit["onnx"] == "model_int8_qdq.onnx" and f"tensorrt/{explicit['onnx']}" in result.files
    assert explicit["check"]["passed"] and explicit["check"]["max_rel_err"] <= explicit["check"]["rtol"] == 0.2
    assert explicit["sensitivity_search"] is None and explicit["fp32_nodes"] == {}  # passed without a search
    model = onnx.load(os.path.join(ctx.out_root, "tensorrt", explicit["onnx"]))
    nodes, init = model.graph.node, {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    made_by = {out: n for n in nodes for out in n.output}
    assert not [n for n in nodes if n.op_type == "BatchNormalization"]  # folded before the weights are quantized
    convs = [n for n in nodes if n.op_type == "Conv"]
    depthwise = [n for n in convs if n.name in explicit["depthwise_in_float"]]
    assert len(depthwise) == 1 and not [name for name in depthwise[0].input[:2]  # float input and weights
                                        if name in made_by and made_by[name].op_type == "DequantizeLinear"]
    for conv in [n for n in convs if n not in depthwise]:
        x, w = (made_by[name] for name in conv.input[:2])
        assert x.op_type == w.op_type == "DequantizeLinear"
        weight_q = made_by[w.input[0]]  # float weight -> Q -> DQ: TensorRT quantizes the weights itself
        assert weight_q.op_type == "QuantizeLinear" and init[weight_q.input[0]].dtype == np.float32
        assert init[w.input[1]].shape == (init[weight_q.input[0]].shape[0],)  # a scale per output channel
        assert len(conv.input) < 3 or conv.input[2] in init  # the bias stays float (no INT32 dequantization)
    quantized = [n.input[0] for n in nodes if n.op_type == "QuantizeLinear"]
    # Q/DQ on the weighted layers' inputs only, never on their outputs
    assert not [t for t in quantized if t in made_by and made_by[t].op_type in ("Conv", "Gemm", "MatMul")]
    zero_points = [init[n.input[2]] for n in nodes if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # symmetric INT8


def test_qdq_model_records_its_top1_and_is_not_shipped_beyond_the_gate(qdq_exported, tmp_path):
    ctx, _ = qdq_exported
    labels = np.argmax(ctx.reference_logits, axis=1)  # the FP32 model is right on every image

    def evaluation():
        yield ctx.check_inputs, labels

    gated = dataclasses.replace(ctx, out_root=str(tmp_path / "open"), evaluation=evaluation)
    assert tensorrt_target(gated).status == "built"
    check = _explicit(gated)["check"]
    assert check["fp32"] == {"top1": 1.0, "num_images": 2} and check["top1_change"] == check["int8"]["top1"] - 1.0
    assert check["max_top1_drop"] == 0.01

    refusing = dataclasses.replace(gated, out_root=str(tmp_path / "shut"),
                                   settings=types.SimpleNamespace(int8_max_top1_drop=-0.5))  # nothing passes
    result = tensorrt_target(refusing)
    assert result.status == "built"  # the rest of the target is still built
    explicit = _explicit(refusing)
    assert explicit["onnx"] is None and "not shipped: top-1 falls by" in explicit["reason"]
    assert not (tmp_path / "shut" / "tensorrt" / "model_int8_qdq.onnx").exists()


def test_a_layer_too_sensitive_to_quantize_is_left_in_float(tmp_path):
    """The image's first channel, which the model ignores, is a thousand times larger than the others in the
    calibration images: the first convolution's input range is then so wide that the channels it does read fall
    on zero. That layer alone moves the logits past Quantization.max_layer_error and is left without Q/DQ
    (TensorRT runs it in float); the rest is quantized, and the model passes its check."""
    import onnx
    import paddle

    model = small_cnn()
    weight = model[0].weight.numpy()
    weight[:, 0] = 0.0
    model[0].weight.set_value(paddle.to_tensor(weight))
    ctx = make_context(tmp_path, size=16, model=model)

    def calibration():
        rng = np.random.default_rng(2)
        for _ in range(2):
            batch = rng.standard_normal((4, *ctx.input_shape)).astype(np.float32)
            batch[:, 0] *= 1000.0
            yield batch

    tensorrt_target(dataclasses.replace(ctx, calibration=calibration))
    explicit = _explicit(ctx)
    assert explicit["onnx"], explicit
    model = onnx.load(os.path.join(ctx.out_root, "tensorrt", explicit["onnx"]))
    made_by = {out: n.op_type for n in model.graph.node for out in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert list(explicit["fp32_nodes"]) == [convs[0].name] and explicit["fp32_nodes"][convs[0].name] > 0.01
    # searched because every layer quantized failed the check; all candidates within the time budget here
    assert explicit["sensitivity_search"] == {"searched": 3, "layers": 3, "budget_s": 60.0}  # 2 convs, 1 MatMul
    assert convs[0].input[0] == model.graph.input[0].name  # fed the image itself, not a DequantizeLinear
    assert made_by[convs[-1].input[0]] == "DequantizeLinear"


def test_deploy_int8_builds_the_qdq_model_strongly_typed_without_precision_flags(qdq_exported, trt_stand_in, tmp_path):
    ctx, _ = qdq_exported
    stand_in = trt_stand_in()
    export = shutil.copytree(ctx.out_root, tmp_path / "export")
    result = tensorrt_engine.deploy_tensorrt(str(export), precision="int8")
    assert result["status"] == "built", result["reason"]
    assert result["check"]["quantization"] == "explicit: model_int8_qdq.onnx" and result["check"]["passed"]
    assert stand_in.networks[-1] == {"onnx": str(export / "tensorrt" / "model_int8_qdq.onnx"), "strongly_typed": True}
    config = stand_in.configs[-1]
    assert (config["fp16"], config["int8"], config["calibrator"]) == (False, False, None) and not stand_in.calibrators

    implicit = tensorrt_engine.deploy_tensorrt(str(export), precision="int8", int8_mode="implicit")
    assert implicit["status"] == "built" and implicit["check"]["quantization"] == "implicit"
    assert stand_in.networks[-1]["onnx"].endswith("model.onnx") and not stand_in.networks[-1]["strongly_typed"]
    assert (stand_in.configs[-1]["fp16"], stand_in.configs[-1]["int8"]) == (True, True)


@pytest.mark.parametrize("precision, int8_mode, built", [("fp32", None, True), ("fp16", None, False),
                                                         ("int8", None, True), ("int8", "implicit", False)])
def test_tensorrt_11_builds_fp32_and_explicit_int8_and_says_why_not_the_rest(qdq_exported, trt_stand_in, tmp_path,
                                                                             precision, int8_mode, built):
    ctx, _ = qdq_exported
    stand_in = trt_stand_in(version="11.4.0")
    export = shutil.copytree(ctx.out_root, tmp_path / "export")
    result = tensorrt_engine.deploy_tensorrt(str(export), precision=precision, int8_mode=int8_mode)
    if built:
        assert result["status"] == "built", result["reason"]
        network = stand_in.networks[-1]  # strongly typed anyway: TensorRT 11 may not know the flag any more
        assert network["strongly_typed"] is False and not stand_in.configs[-1]["fp16"]
        assert not stand_in.configs[-1]["int8"]
    else:
        assert result["status"] == "skipped" and "TensorRT 11.4.0 has no" in result["reason"]
        assert tensorrt_engine.TENSORRT_REQUIREMENT in result["reason"] and not stand_in.networks


def test_deploy_explicit_int8_of_an_export_without_a_qdq_model_says_why(exported, trt_stand_in, capsys):
    ctx, _ = exported
    trt_stand_in()
    reason = _explicit(ctx)["reason"]  # the zoo's random PP-LCNet: its Q/DQ model failed the check
    with pytest.raises(SystemExit) as exit_info:
        main(["deploy", "tensorrt", ctx.out_root, "--precision", "int8", "--int8", "explicit"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no Q/DQ model for explicit INT8" in err and reason[:40] in err


def test_the_published_export_holds_the_legacy_program_paddle_trt_config_names(tmp_path):
    """Through the export stage itself, which removes its working folders before publishing: the Paddle-TRT
    configuration names a folder inside the target, holding the checked legacy program (format 1 named the PIR
    reference export, deleted before publishing)."""
    import paddle

    from ppipe.config.schema import ExportSection
    from ppipe.export.run import export_targets
    from ppipe.inference import create_predictor, predict
    from ppipe.models import create_model

    paddle.seed(0)
    out = tmp_path / "e"
    summary = export_targets(create_model("PPLCNet_x0_25", num_classes=10), str(out), (3, 32, 32), ["tensorrt"],
                             settings=ExportSection(measure_seconds=0))
    result = summary["targets"]["tensorrt"]
    assert result["status"] == "built", result["reason"]
    paddle_trt = result["check"]["paddle_trt"]
    assert paddle_trt["written"] and paddle_trt["max_rel_err"] <= paddle_trt["rtol"]
    assert sorted(os.listdir(out)) == ["export.json", "tensorrt"]  # no working folder left beside it
    spec = json.loads((out / "tensorrt" / "paddle_trt_config.json").read_text())
    program = (out / "tensorrt" / spec["model_dir"]).resolve()
    assert program.is_relative_to(out / "tensorrt") and sorted(os.listdir(program)) == ["model.pdiparams",
                                                                                       "model.pdmodel"]
    assert "tensorrt/paddle/model.pdmodel" in result["files"]
    inputs = np.load(out / "tensorrt" / "check_inputs.npy")
    logits = predict(create_predictor(str(program), mkldnn=False), inputs)
    np.testing.assert_allclose(logits, np.load(out / "tensorrt" / "reference_logits.npy"), rtol=1e-4, atol=1e-4)


def test_the_qdq_model_of_a_vit_is_made_without_leaving_files_in_the_working_directory(tmp_path, monkeypatch):
    """ONNX Runtime's symbolic shape inference gives up on ViTs and then saves its partial model, with its
    weights under a random name, into the current directory (ppipe once left 22-190 MB files in the repository
    that way); the pre-processing skips it."""
    from tests.zoo_cases import test_input_size

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    name = "DeiT_tiny_patch16_224"
    ctx = make_context(tmp_path / "export", name, test_input_size(name, preferred=32), 10)
    assert tensorrt_target(ctx).status == "built"
    explicit = _explicit(ctx)
    assert "could not be made" not in explicit.get("reason", ""), explicit["reason"]
    assert os.listdir(cwd) == []
