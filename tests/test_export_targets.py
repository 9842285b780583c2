"""The export orchestrator (`ppipe.export.run.export_targets`), the FP32 oneDNN target with its shipped
predictor configuration, calibration batches and speed measurements."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import paddle
import pytest

from ppipe.config.schema import ExportSection
from ppipe.config.typed import from_dict
from ppipe.errors import ConfigError
from ppipe.export import TARGETS, TargetResult
from ppipe.export.calibration import calibration_batches
from ppipe.export.measure import measure_speed
from ppipe.export.run import export_targets, requested_targets
from ppipe import inference
from ppipe.export import cpu_engine
from ppipe.inference import InferenceError, create_predictor, load_settings, predict
from tests.test_export import _tiny

# oneDNN only: the engine choice (a legacy export and both engines timed) has tests of its own below
FAST = ExportSection(measure_seconds=0.05, threads=2, cpu_engine="onednn")


def _only(monkeypatch, **targets):
    """TARGETS holding the FP32 target plus `targets` (name -> function) for one test."""
    keep = {"paddle-inference-mkldnn": TARGETS.get("paddle-inference-mkldnn"), **targets}
    monkeypatch.setattr(TARGETS, "_items", keep)


def test_a_failing_target_is_recorded_and_the_others_are_built(tmp_path, monkeypatch):
    def broken(ctx):
        os.makedirs(os.path.join(ctx.out_root, "broken"))
        open(os.path.join(ctx.out_root, "broken", "half.bin"), "wb").close()  # a partial build
        raise RuntimeError("converter crashed")

    def needs_gpu(ctx):
        return TargetResult("needs-gpu", "skipped", reason="no GPU on this machine")

    _only(monkeypatch, broken=broken, **{"needs-gpu": needs_gpu})
    out = tmp_path / "export"
    summary = export_targets(_tiny(), str(out), (3, 16, 16), settings=FAST)
    t = summary["targets"]
    assert t["broken"]["status"] == "failed" and t["broken"]["reason"] == "RuntimeError: converter crashed"
    assert t["needs-gpu"] == {"name": "needs-gpu", "status": "skipped", "reason": "no GPU on this machine",
                              "files": [], "check": {}, "measurements": {}}
    assert t["paddle-inference-mkldnn"]["status"] == "built"
    # only finished targets and the summary are visible: no partial folder, no reference, no staging folder
    assert sorted(os.listdir(out)) == ["export.json", "paddle-inference-mkldnn"]
    assert os.listdir(tmp_path) == ["export"]
    assert json.loads((out / "export.json").read_text()) == summary


def test_fp32_target_ships_the_predictor_configuration_it_was_checked_with(tmp_path, monkeypatch):
    _only(monkeypatch)
    model = _tiny()
    summary = export_targets(model, str(tmp_path / "e"), (3, 16, 16), settings=FAST)
    fp32 = summary["targets"]["paddle-inference-mkldnn"]
    assert fp32["files"] == ["paddle-inference-mkldnn/model.json", "paddle-inference-mkldnn/model.pdiparams",
                             "paddle-inference-mkldnn/predictor.json"]
    assert fp32["check"]["max_rel_err"] <= 1e-4 and fp32["check"]["rtol"] == 1e-4
    m = fp32["measurements"]
    assert m["latency_ms_b1"] > 0 and m["throughput_b32"] > 0 and m["cpu"]

    target = tmp_path / "e" / "paddle-inference-mkldnn"
    shipped = load_settings(str(target))
    assert shipped.threads == 2 and shipped.mkldnn and not shipped.int8
    x = np.random.default_rng(3).standard_normal((5, 3, 16, 16)).astype("float32")
    model.eval()
    with paddle.no_grad():
        ref = model(paddle.to_tensor(x)).numpy()
    got = predict(create_predictor(str(target)), x)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def _dygraph_logits(model, x):
    model.eval()
    with paddle.no_grad():
        return model(paddle.to_tensor(x)).numpy()


@pytest.mark.skipif(not inference.openvino_available(), reason="this Paddle build has no OpenVINO engine")
def test_auto_times_both_cpu_engines_and_ships_the_faster(tmp_path, monkeypatch):
    _only(monkeypatch)
    model = _tiny()
    settings = ExportSection(measure_seconds=0.05, threads=2)  # cpu_engine: auto (the default)
    fp32 = export_targets(model, str(tmp_path / "e"), (3, 16, 16), settings=settings)["targets"][
        "paddle-inference-mkldnn"]
    engines = fp32["check"]["engines"]
    assert set(engines) == {"onednn", "openvino"}
    assert all(e["status"] == "built" and e["latency_ms_b1"] > 0 and e["throughput_b32"] > 0
               for e in engines.values())
    chosen = fp32["check"]["engine"]
    assert chosen == cpu_engine.faster_engine(engines)
    # what was measured is what ships: the medians of the engines' interleaved rounds
    assert fp32["measurements"]["throughput_b32"] == engines[chosen]["throughput_b32"]
    assert fp32["measurements"]["rounds"] == cpu_engine.CHOICE_ROUNDS
    program = "model.json" if chosen == "onednn" else "model.pdmodel"
    assert fp32["files"] == sorted(f"paddle-inference-mkldnn/{f}" for f in (program, "model.pdiparams",
                                                                            "predictor.json"))
    target = str(tmp_path / "e" / "paddle-inference-mkldnn")
    assert load_settings(target).engine == chosen
    x = np.random.default_rng(3).standard_normal((5, 3, 16, 16)).astype("float32")
    ref = _dygraph_logits(model, x)
    assert np.abs(predict(create_predictor(target), x) - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.skipif(not inference.openvino_available(), reason="this Paddle build has no OpenVINO engine")
def test_the_openvino_engine_ships_the_legacy_program_and_computes_the_same_logits(tmp_path, monkeypatch):
    _only(monkeypatch)
    model = _tiny()
    settings = ExportSection(measure_seconds=0, threads=2, cpu_engine="openvino")
    fp32 = export_targets(model, str(tmp_path / "e"), (3, 16, 16), settings=settings)["targets"][
        "paddle-inference-mkldnn"]
    assert fp32["check"]["engine"] == "openvino" and set(fp32["check"]["engines"]) == {"openvino"}
    assert fp32["check"]["max_rel_err"] <= 1e-4
    target = tmp_path / "e" / "paddle-inference-mkldnn"
    assert sorted(os.listdir(target)) == ["model.pdiparams", "model.pdmodel", "predictor.json"]
    shipped = load_settings(str(target))
    assert shipped.engine == "openvino" and shipped.threads == 2 and shipped.deleted_passes == ()
    x = np.random.default_rng(4).standard_normal((3, 3, 16, 16)).astype("float32")
    ref = _dygraph_logits(model, x)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert np.abs(predict(create_predictor(str(target)), x) - ref).max() <= 1e-4 * np.abs(ref).max()
    assert list(cwd.iterdir()) == []  # OpenVINO's compile cache is private and removed, not ./__cache__
    # another image size: Paddle's OpenVINO engine only logs its failure; ppipe raises instead of returning nothing
    with pytest.raises(InferenceError, match=r"logits of shape \[0, 7\] for a \[2, 3, 8, 8\] batch"):
        predict(create_predictor(str(target)), np.zeros((2, 3, 8, 8), "float32"))

    # a Paddle build without OpenVINO still loads the folder: its legacy program on oneDNN, with a warning
    monkeypatch.setattr(inference, "openvino_available", lambda: False)
    warned: list[str] = []  # the console handler may not propagate to caplog
    monkeypatch.setattr(inference.log, "warning", lambda msg, *a: warned.append(msg % a))
    got = predict(create_predictor(str(target)), x)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    assert any("no OpenVINO engine" in m for m in warned)


def test_a_failing_engine_candidate_is_recorded_and_the_other_ships(tmp_path, monkeypatch):
    from ppipe.export import legacy

    def no_legacy(*args, **kwargs):
        raise legacy.LegacyExportError("multiply(): argument must be Value, but got Variable")

    monkeypatch.setattr(legacy, "export_legacy_model", no_legacy)
    monkeypatch.setattr(inference, "openvino_available", lambda: True)
    _only(monkeypatch)
    fp32 = export_targets(_tiny(), str(tmp_path / "e"), (3, 16, 16),
                          settings=ExportSection(measure_seconds=0.05, threads=2))["targets"][
        "paddle-inference-mkldnn"]
    assert fp32["status"] == "built" and fp32["check"]["engine"] == "onednn"
    assert fp32["check"]["engines"]["openvino"] == {
        "status": "failed",
        "reason": "no legacy program for the OpenVINO engine: multiply(): argument must be Value, but got Variable"}
    assert load_settings(str(tmp_path / "e" / "paddle-inference-mkldnn")).engine == "onednn"


def test_faster_engine_weighs_latency_and_throughput():
    onednn = {"latency_ms_b1": 4.0, "throughput_b32": 200.0}
    assert cpu_engine.faster_engine({"onednn": onednn, "openvino": {"latency_ms_b1": 2.0,
                                                                    "throughput_b32": 180.0}}) == "openvino"
    assert cpu_engine.faster_engine({"onednn": onednn, "openvino": {"latency_ms_b1": 3.9,
                                                                    "throughput_b32": 150.0}}) == "onednn"
    assert cpu_engine.faster_engine({"onednn": {}, "openvino": {}}) == "onednn"
    # auto with nothing timed (Export.measure_seconds: 0) builds oneDNN alone
    assert cpu_engine.requested_engines(ExportSection(measure_seconds=0)) == ("onednn",)
    assert cpu_engine.requested_engines(ExportSection()) == ("onednn", "openvino")
    assert cpu_engine.requested_engines(ExportSection(measure_seconds=0, cpu_engine="openvino")) == ("openvino",)


def test_competing_engines_are_timed_in_interleaved_rounds_and_keep_their_medians(monkeypatch):
    calls = []
    figures = {"onednn": iter([(4.0, 200.0), (9.0, 90.0), (4.2, 210.0)]),  # round 2: a burst of load
               "openvino": iter([(3.0, 220.0), (3.1, 230.0), (2.9, 100.0)])}

    def predict(engine, batch):
        if engine == "broken" and len(calls) >= 2:  # its second round
            raise InferenceError("the predictor returned logits of shape [0]")

    def measure(ctx, run, share=1.0):
        engine = run.__closure__[0].cell_contents  # the predictor `run` calls: here, the engine's name
        run(None)
        calls.append((engine, share))
        latency, throughput = next(figures[engine])
        return {"latency_ms_b1": latency, "throughput_b32": throughput, "cpu": "x"}

    monkeypatch.setattr(cpu_engine._inference, "predict", predict)
    timed, failed = cpu_engine.timed_in_rounds(None, {"onednn": "onednn", "openvino": "openvino"}, measure)
    third = 1 / cpu_engine.CHOICE_ROUNDS
    assert calls == [("onednn", third), ("openvino", third), ("openvino", third), ("onednn", third),
                     ("onednn", third), ("openvino", third)]
    assert failed == {}
    assert timed == {"onednn": {"latency_ms_b1": 4.2, "throughput_b32": 200.0, "cpu": "x", "rounds": 3},
                     "openvino": {"latency_ms_b1": 3.0, "throughput_b32": 220.0, "cpu": "x", "rounds": 3}}
    assert cpu_engine.faster_engine(timed) == "openvino"
    # one engine alone: measured once, with the whole measuring time
    calls.clear()
    figures["onednn"] = iter([(4.0, 200.0)])
    timed, _ = cpu_engine.timed_in_rounds(None, {"onednn": "onednn"}, measure)
    assert calls == [("onednn", 1.0)] and timed["onednn"]["latency_ms_b1"] == 4.0
    # an engine that fails while timed is dropped with its reason; the other is still timed
    calls.clear()
    figures["onednn"] = iter([(4.0, 200.0), (4.1, 201.0), (4.2, 202.0)])
    figures["broken"] = iter([(1.0, 900.0)])
    timed, failed = cpu_engine.timed_in_rounds(None, {"onednn": "onednn", "broken": "broken"}, measure)
    assert list(timed) == ["onednn"] and timed["onednn"]["latency_ms_b1"] == 4.1
    assert failed == {"broken": "failed while timed: the predictor returned logits of shape [0]"}
    assert [e for e, _ in calls] == ["onednn", "broken", "onednn", "onednn"]
    # not timed (measure_seconds 0): nothing to take medians of
    timed, _ = cpu_engine.timed_in_rounds(None, {"a": "a", "b": "b"}, lambda ctx, run, share=1.0: {})
    assert timed == {"a": {}, "b": {}}


def test_engine_settings_are_checked(tmp_path):
    with pytest.raises(InferenceError, match="engine must be one of"):
        inference.PredictorSettings.from_dict({"engine": "tensorrt"}, "predictor.json")
    with pytest.raises(InferenceError, match="openvino engine runs FP32 programs only"):
        inference.PredictorSettings.from_dict({"engine": "openvino", "int8": True}, "predictor.json")
    with pytest.raises(ConfigError, match="cpu_engine"):
        from_dict(ExportSection, {"cpu_engine": "openvin"}, "Export")


@pytest.mark.parametrize("data, message", [
    ({"threads": "2"}, "threads must be an integer, got '2'"),
    ({"threads": True}, "threads must be an integer, got True"),
    ({"mkldnn": "no"}, "mkldnn must be true or false, got 'no'"),
    ({"int8": 1}, "int8 must be true or false, got 1"),
    ({"deleted_passes": "fc_fuse_pass"}, "deleted_passes must be a list of strings"),
    ({"deleted_passes": [1]}, "deleted_passes must be a list of strings"),
    ({"engine": None}, "engine must be a string"),
    ({"threads": 0}, "threads must be >= 1"),
    ({"thread": 2}, "unknown predictor setting(s) ['thread']"),
])
def test_predictor_json_with_the_wrong_types_is_refused_naming_the_field(tmp_path, data, message):
    (tmp_path / "predictor.json").write_text(json.dumps(data))
    with pytest.raises(InferenceError) as raised:
        inference.load_settings(str(tmp_path))
    assert str(tmp_path / "predictor.json") in str(raised.value) and message in str(raised.value)


def test_predictor_json_with_every_field_of_its_type_loads(tmp_path):
    settings = inference.PredictorSettings(mkldnn=False, threads=3, deleted_passes=("fc_fuse_pass",),
                                           engine="openvino")
    (tmp_path / "predictor.json").write_text(json.dumps(settings.to_dict()))
    assert inference.load_settings(str(tmp_path)) == settings


def test_the_openvino_engine_runs_without_paddle_s_onednn_and_the_onednn_engine_with_it(tmp_path):
    # with oneDNN on, Paddle's OpenMP threads spin beside OpenVINO's after each run (benchmarks/README.md)
    files = (str(tmp_path / "model.pdmodel"), str(tmp_path / "model.pdiparams"))
    for f in files:
        open(f, "wb").close()  # Config wants them to exist; nothing reads them before a predictor is created
    settings = inference.PredictorSettings(threads=2)
    ov = inference._config(*files, dataclasses.replace(settings, engine="openvino"), openvino_cache=str(tmp_path))
    assert not ov.mkldnn_enabled()
    assert inference._config(*files, settings, openvino_cache=None).mkldnn_enabled()
    # where this Paddle has no OpenVINO, an openvino folder runs its legacy program on oneDNN (no cache folder)
    assert inference._config(*files, dataclasses.replace(settings, engine="openvino"),
                             openvino_cache=None).mkldnn_enabled()


def test_a_bad_predictor_json_is_named(tmp_path, monkeypatch):
    _only(monkeypatch)
    export_targets(_tiny(), str(tmp_path / "e"), (3, 8, 8), settings=ExportSection(measure_seconds=0))
    target = tmp_path / "e" / "paddle-inference-mkldnn"
    (target / "predictor.json").write_text(json.dumps({"threads": 2, "mkldnn_cach_capacity": 3}))
    with pytest.raises(InferenceError, match=r"predictor.json: unknown predictor setting\(s\) \['mkldnn_cach"):
        create_predictor(str(target))


def test_target_names_are_checked():
    assert requested_targets("paddle-inference-mkldnn-int8, paddle-inference-mkldnn") == [
        "paddle-inference-mkldnn", "paddle-inference-mkldnn-int8"]
    assert set(requested_targets(None)) >= {"paddle-inference-mkldnn", "paddle-inference-mkldnn-int8"}
    with pytest.raises(ConfigError, match="unknown export target 'paddle-inference-mkldn'.*did you mean"):
        requested_targets(["paddle-inference-mkldn"])


def test_the_reference_export_failing_leaves_nothing(tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(paddle.jit, "save", disk_full)
    with pytest.raises(Exception, match="disk full"):
        export_targets(_tiny(), str(tmp_path / "e"), (3, 8, 8), settings=FAST)
    assert os.listdir(tmp_path) == []


def test_calibration_draws_n_train_images_with_the_eval_transforms(digits_prepared):
    cfg = _digits_config(digits_prepared)
    sizes = [b.shape for b in calibration_batches(digits_prepared, cfg, n=50, batch=16)]
    assert [s[0] for s in sizes] == [16, 16, 16, 2]
    assert all(s[1:] == (3, 16, 16) for s in sizes)
    again = np.concatenate(list(calibration_batches(digits_prepared, cfg, n=50, batch=16)))
    first = np.concatenate(list(calibration_batches(digits_prepared, cfg, n=50, batch=16)))
    assert np.array_equal(again, first)  # seeded: two exports calibrate alike
    with pytest.raises(ValueError, match="n >= 1"):
        next(calibration_batches(digits_prepared, cfg, n=0))


def _digits_config(prepared):
    """A config whose eval transforms resize the digits to 16x16."""
    from ppipe.config import load_config

    return load_config(data={"Arch": {"name": "MobileNetV1_x0_25", "class_num": 10},
                     "Global": {"image_shape": [3, 16, 16]},
                     "DataLoader": {"Eval": {"dataset": {"transform_ops": [
                         {"DecodeImage": {"to_rgb": True, "channel_first": False}},
                         {"ResizeImage": {"size": 16}},
                         {"NormalizeImage": {"scale": 1 / 255.0, "mean": [0.485, 0.456, 0.406],
                                             "std": [0.229, 0.224, 0.225], "order": ""}},
                         {"ToCHWImage": None}]}}}}, overrides=[f"Data.prepared={prepared}"])


def test_measure_speed_times_batch_1_and_batch_32():
    seen = []
    m = measure_speed(lambda b: seen.append(b.shape[0]), (3, 4, 4), min_seconds=0.01, warmup=1, min_runs=3)
    assert seen.count(1) >= 4 and seen.count(32) >= 4  # warm-up + timed runs of each
    assert m["runs"]["b1"] == seen.count(1) - 1 and m["latency_ms_b1"] >= 0 and m["throughput_b32"] > 0
    assert isinstance(m["cpu"], str) and m["cpu"]
