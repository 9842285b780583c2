"""`ppipe evaluate`: spread over Ray workers with the numbers of one process, on a run folder, a .pdparams file
or a published artifact; its outputs (eval.json, the DVC metrics and plots, the deployment targets' top-1) and the
model card of an evaluated run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

from ppipe import stages
from ppipe.config import load_config
from ppipe.errors import UserError
from ppipe.evaluation import load_report, sum_counts, write_run_model_card

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def _config(tmp: Path, prepared: str, *overrides: str):
    return load_config(QUICKSTART, [
        f"Global.output_dir={tmp}/out", "Global.image_shape=[3, 16, 16]", "Export.input_shape=[3, 16, 16]",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16", "DataLoader.Eval.sampler.batch_size=64",
        f"Data.prepared={prepared}", f"Publish.store={tmp}/store", "Ray.num_workers=0",
        "Export.measure_seconds=0", *overrides])


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    """Random PPLCNet_x0_25 weights for the 10 digit classes (the numbers need not be good to be compared)."""
    from ppipe.models import create_model

    paddle.seed(3)
    model = create_model("PPLCNet_x0_25", num_classes=10)
    path = tmp_path_factory.mktemp("weights") / "random.pdparams"
    paddle.save(model.state_dict(), str(path))
    return str(path)


def test_counts_of_ranks_sum_key_by_key_and_must_agree_on_keys():
    total = sum_counts([{"a": np.array([1.0, 2.0]), "n": 3.0}, {"a": np.array([4.0, 5.0]), "n": 1.0}])
    assert total["a"].tolist() == [5.0, 7.0] and float(total["n"]) == 4.0
    with pytest.raises(ValueError, match="different counts"):
        sum_counts([{"a": 1.0}, {"b": 1.0}])


def test_two_ray_workers_give_the_numbers_of_one_process(tmp_path, digits_prepared, weights, local_ray, caplog):
    one = stages.evaluate(_config(tmp_path, digits_prepared), weights=weights, out=str(tmp_path / "one"))
    with caplog.at_level("INFO", logger="ppipe.evaluation"):
        two = stages.evaluate(_config(tmp_path, digits_prepared, "Ray.num_workers=2"), weights=weights,
                              out=str(tmp_path / "two"))
    assert "Global.device: cpu: evaluating on CPU workers (2 Ray workers)" in caplog.text
    assert one["num_images"] == two["num_images"] == 360
    for key in ("top1", "top5", "loss", "ece", "mean_class_accuracy"):
        assert two[key] == pytest.approx(one[key], rel=1e-9, abs=1e-12), key
    single, spread = (load_report(str(tmp_path / name / "eval/counts.npz")) for name in ("one", "two"))
    np.testing.assert_array_equal(spread.confusion, single.confusion)
    assert single.confusion.sum() == 360 and single.top1 == pytest.approx(one["top1"])


def test_cli_evaluates_a_pdparams_file_like_paddleclas_eval(tmp_path, digits_prepared, weights, capsys):
    from ppipe.cli import main

    cfg = _config(tmp_path, digits_prepared)
    base = [str(QUICKSTART), *(f"-o{o}" for o in (
        f"Global.output_dir={tmp_path}/out", "Global.image_shape=[3, 16, 16]", "Ray.num_workers=0",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16", f"Data.prepared={digits_prepared}"))]
    main(["evaluate", *base, f"-oGlobal.pretrained_model={weights.removesuffix('.pdparams')}", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["weights"] == weights and printed["num_images"] == 360
    assert 0.0 <= printed["top1"] <= printed["top5"] <= 1.0 and printed["targets_not_scored"] == {}
    assert not Path(stages.run_dir(cfg)).exists()  # other weights never write into the run folder

    main(["evaluate", *base, "--weights", weights, "--out", str(tmp_path / "elsewhere"), "--json"])
    assert json.loads(capsys.readouterr().out)["top1"] == printed["top1"]
    written = json.loads((tmp_path / "elsewhere/eval.json").read_text())
    assert written["top1"] == printed["top1"] and (tmp_path / "elsewhere/eval/reliability.png").is_file()

    main(["evaluate", *base, "--weights", weights])  # for a person: the summary, not the document
    assert capsys.readouterr().out.startswith(
        f"{printed['model']} on 360 val images (10 classes): top-1 {printed['top1']:.4f}")


def test_evaluate_pulls_a_published_artifact_by_alias(tmp_path, digits_prepared, weights):
    from ppipe.artifacts import ArtifactStore
    from ppipe.errors import UserError

    store = ArtifactStore(str(tmp_path / "store"))
    store.publish("digits", {"model.pdparams": weights}, aliases=["candidate"], metadata={"model": "PPLCNet_x0_25"})
    store.publish("other", {"model.pdparams": weights}, metadata={"model": "ResNet50_vd"})
    cfg = _config(tmp_path, digits_prepared)
    pulled = stages.evaluate(cfg, model_ref="digits@candidate")
    assert pulled["weights"] == "digits@candidate (digits:v1)"
    assert pulled["top1"] == stages.evaluate(cfg, weights=weights)["top1"]
    with pytest.raises(UserError, match="holds a ResNet50_vd"):
        stages.evaluate(cfg, model_ref="other")


def test_evaluate_refuses_weights_for_another_number_of_classes(tmp_path, digits_prepared, weights):
    from ppipe.errors import UserError

    with pytest.raises(UserError, match="1000 classes.*has 10"):
        stages.evaluate(_config(tmp_path, digits_prepared, "Arch.class_num=1000"), weights=weights)
    with pytest.raises(UserError, match="not both"):
        stages.evaluate(_config(tmp_path, digits_prepared), weights=weights, model_ref="x@candidate")


def _gate_scoring(fp32_top1: float, int8_top1: float):
    """Stands in for the INT8 accuracy gate's `topk_of`, which scores the FP32 predictor first, then INT8."""
    results = iter([fp32_top1, int8_top1])

    def topk_of(run, batches, ks=(1, 5)):
        return {"top1": next(results), "top5": 1.0, "num_images": 8}
    return topk_of


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, digits_prepared, weights):
    """A run folder with weights, its FP32 export and an INT8 target its accuracy gate refused (the gate's scores
    stood in: FP32 0.9, INT8 0.1 on 8 images), plus recorded targets: two built that cannot be scored and a
    skipped one; evaluated."""
    import ppipe.export.int8 as int8

    tmp = tmp_path_factory.mktemp("run")
    cfg = _config(tmp, digits_prepared, "Export.calibration_images=8", "Export.calibration_batch=8",
                  "Export.int8_eval_images=8")
    rdir = stages.run_dir(cfg)
    Path(rdir.root).mkdir(parents=True)
    shutil.copyfile(weights, rdir.model)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(int8, "topk_of", _gate_scoring(0.9, 0.1))
        stages.export(cfg, targets="paddle-inference-mkldnn,paddle-inference-mkldnn-int8")
    report = json.loads(Path(rdir.export_report).read_text())
    # recorded as built, without the Q/DQ model ONNX Runtime would score for it (its check refused it)
    report["targets"]["tensorrt"] = {"status": "built", "files": [], "reason": "", "measurements": {}}
    # recorded as built, but its folder is gone: reported as not scored, the evaluation goes on
    report["targets"]["onnx"] = {"status": "built", "files": [], "measurements": {"latency_ms_b1": 1.5}}
    report["targets"]["paddle-lite"] = {"status": "skipped", "reason": "paddlelite needs Python <= 3.10\n(detail)"}
    Path(rdir.export_report).write_text(json.dumps(report))
    return cfg, rdir, stages.evaluate(cfg)


def test_run_evaluation_writes_eval_json_dvc_outputs_and_target_top1(evaluated_run):
    cfg, rdir, metrics = evaluated_run
    assert json.loads(Path(rdir.eval).read_text()) == metrics
    assert {"top1", "top5", "loss", "num_images"} <= set(metrics) and metrics["weights"] == rdir.model
    # the FP32 export computes the model's logits within 1e-4: the same predictions on the 360 images
    assert metrics["target_top1/paddle-inference-mkldnn"] == pytest.approx(metrics["top1"], abs=1 / 360)
    assert "the export shipped no INT8 Q/DQ model" in metrics["targets_not_scored"]["tensorrt"]
    assert "scoring failed: FileNotFoundError" in metrics["targets_not_scored"]["onnx"]
    eval_dir = Path(rdir.eval_outputs)
    assert json.loads((eval_dir / "metrics.json").read_text())["top1"] == pytest.approx(metrics["top1"])
    assert {"reliability.csv", "confusion_focus.csv", "confusion_pairs.csv", "confusion_matrix.png",
            "per_class.csv", "counts.npz"} <= {p.name for p in eval_dir.iterdir()}


def test_target_table_lists_every_target_with_its_status_and_a_refused_int8_with_the_gate_figures(evaluated_run):
    _, rdir, metrics = evaluated_run
    table = metrics["targets"]
    assert sorted(table) == ["onnx", "paddle-inference-mkldnn", "paddle-inference-mkldnn-int8", "paddle-lite",
                             "tensorrt"]
    fp32 = table["paddle-inference-mkldnn"]
    assert (fp32["status"], fp32["deployable"], fp32["num_images"]) == ("built", True, 360)
    assert fp32["top1"] == metrics["target_top1/paddle-inference-mkldnn"] and fp32["measured_on"] == (
        "the val split (360 images)")
    int8 = table["paddle-inference-mkldnn-int8"]
    assert (int8["status"], int8["deployable"]) == ("refused", False)
    assert (int8["top1"], int8["top5"], int8["num_images"], int8["reference_top1"]) == (0.1, 1.0, 8, 0.9)
    assert "refused by the export's INT8 accuracy gate" in int8["reason"] and "first 8 val images" in int8["reason"]
    assert "target_top1/paddle-inference-mkldnn-int8" not in metrics  # a refused target is never scored as shipped
    assert not Path(rdir.exports, "paddle-inference-mkldnn-int8").exists()
    assert table["onnx"]["reason"].startswith("not scored: scoring failed") and table["onnx"]["top1"] is None
    assert table["onnx"]["latency_ms_b1"] == 1.5
    assert table["paddle-lite"] == {**table["paddle-lite"], "status": "skipped", "deployable": False,
                                    "reason": "paddlelite needs Python <= 3.10"}
    files: dict[str, str] = {}
    assert "paddle-inference-mkldnn-int8" not in stages.published_targets(rdir, files)


def test_tensorrt_target_is_scored_through_its_int8_qdq_model_in_onnx_runtime(tmp_path, digits_prepared, weights):
    """No GPU on the CPU workers: the tensorrt row's top-1 is its Q/DQ model's in ONNX Runtime on the whole val
    split, and says so; the same figure as scoring that file directly."""
    import onnxruntime as ort

    from ppipe.evaluate import eval_batches, eval_transform_ops
    from ppipe.export import tensorrt_qdq as qdq

    cfg = _config(tmp_path, digits_prepared)
    rdir = stages.run_dir(cfg)
    Path(rdir.root).mkdir(parents=True)
    shutil.copyfile(weights, rdir.model)
    stages.export(cfg, targets="onnx")
    trt = Path(rdir.exports, "tensorrt")
    trt.mkdir()
    batches = list(eval_batches(digits_prepared, "val", eval_transform_ops(cfg), 64))
    folded = str(tmp_path / "folded.onnx")
    qdq.fold_for_quantization(str(Path(rdir.exports, "onnx", "model.onnx")), folded)
    qdq.quantize(folded, str(trt / qdq.QDQ_ONNX), qdq.calibrate(folded, batches[0][0]))
    report = json.loads(Path(rdir.export_report).read_text())
    report["targets"]["tensorrt"] = {"status": "built", "files": [], "reason": "", "measurements": {}}
    Path(rdir.export_report).write_text(json.dumps(report))

    metrics = stages.evaluate(cfg)
    session = ort.InferenceSession(str(trt / qdq.QDQ_ONNX), providers=["CPUExecutionProvider"])
    correct = sum(int((session.run(None, {"x": images})[0].argmax(1) == labels).sum()) for images, labels in batches)
    # one image's margin: the workers' ONNX Runtime may use another thread count (rounding, on random weights)
    assert metrics["target_top1/tensorrt"] == pytest.approx(correct / 360, abs=1.01 / 360)
    assert "tensorrt" not in metrics.get("targets_not_scored", {})
    row = metrics["targets"]["tensorrt"]
    assert (row["status"], row["top1"], row["num_images"]) == ("built", metrics["target_top1/tensorrt"], 360)
    assert row["measured_on"].startswith("the val split (360 images): its INT8 Q/DQ model (model_int8_qdq.onnx) "
                                         "in ONNX Runtime on the CPU")
    assert metrics["targets"]["onnx"]["measured_on"] == "the val split (360 images)"


def test_model_card_is_written_from_the_run_folder(evaluated_run):
    from ppipe.lineage import data_identity

    cfg, rdir, metrics = evaluated_run
    Path(rdir.lineage).write_text(json.dumps({"git_commit": "0badc0de"}))
    paths = write_run_model_card(cfg, rdir)
    assert sorted(Path(p).name for p in paths) == ["model_card.json", "model_card.md"]
    card = json.loads((Path(rdir.root) / "model_card.json").read_text())
    assert card["metrics"]["top1"] == pytest.approx(metrics["top1"])
    rows = {row["name"]: row for row in card["targets"]}
    assert rows["paddle-inference-mkldnn"]["top1"] == metrics["target_top1/paddle-inference-mkldnn"]
    assert rows["tensorrt"]["top1"] is None
    assert rows["tensorrt"]["reason"].startswith("not scored: the export shipped no INT8 Q/DQ model")
    int8 = rows["paddle-inference-mkldnn-int8"]
    assert (int8["status"], int8["top1"], int8["delta_top1"]) == ("refused", 0.1, pytest.approx(-0.8))
    assert card["data_version"]["splits"] == {"train": 1437, "val": 360}
    # the same identity the artifact's lineage records for the data, not a second hash of the manifest
    assert card["data_version"] == data_identity(cfg)[0] and len(card["data_version"]["manifest_sha256"]) == 64
    assert card["lineage"] == {"run_name": "quickstart", "git_commit": "0badc0de"}
    assert card["images"]["reliability"] == "eval/reliability.png"
    assert (Path(rdir.root) / card["images"]["confusion_matrix"]).is_file()
    # the size the recipe evaluated and exported at (16 here), not the spec's 224
    model = card["model"]
    assert (model["input_size"], model["spec_input_size"]) == (16, 224)
    assert model["input_size_source"] == "the eval transforms (ResizeImage.size) and the export's input_shape"
    md = (Path(rdir.root) / "model_card.md").read_text()
    assert "eval/reliability.png" in md and "| Input size | 16 x 16 |" in md
    assert "| paddle-inference-mkldnn-int8 | refused | no | " in md and "the first 8 val images" in md


def test_dvc_reads_the_evaluate_stage_metrics_and_plots(evaluated_run, tmp_path):
    """dvc.yaml's evaluate stage names files the stage writes, in forms DVC parses (real `dvc` commands)."""
    _, rdir, metrics = evaluated_run
    repo = tmp_path / "repo"
    repo.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    shutil.copy(ROOT / "params.yaml", repo / "params.yaml")
    shutil.copytree(rdir.eval_outputs, repo / params["run_dir"] / "eval")
    dvc = [str(Path(sys.executable).parent / "dvc")]
    env = {"DVC_NO_ANALYTICS": "1", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=repo, check=True, env=env)
    shown = subprocess.run([*dvc, "metrics", "show", "--json"], cwd=repo, env=env, capture_output=True, text=True)
    data = json.loads(shown.stdout)[""]["data"]
    assert data[f"{params['run_dir']}/eval/metrics.json"]["data"]["top1"] == pytest.approx(metrics["top1"])
    plots = json.loads(subprocess.run([*dvc, "plots", "show", "--json"], cwd=repo, env=env, capture_output=True,
                                      text=True).stdout)
    eval_dir = f"{params['run_dir']}/eval"
    # only the train stage's curves (not written here) may be missing
    assert [e["source"] for e in plots["errors"] if e["source"].startswith(eval_dir)] == []
    for name in ("reliability.csv", "confusion_focus.csv", "confusion_pairs.csv"):
        (rendered,) = plots["data"][f"{eval_dir}/{name}"]
        assert rendered["type"] == "vega" and rendered["content"]["data"]["values"], name
    for name in ("confusion_matrix.png", "reliability.png", "worst_classes.png"):
        assert plots["data"][f"{eval_dir}/{name}"][0]["type"] == "image", name


def test_evaluation_goes_to_wandb_as_tracking_says(evaluated_run, tmp_path, monkeypatch):
    from ppipe.evaluation.stage import log_evaluation

    _, rdir, _ = evaluated_run
    report = load_report(rdir.eval_counts)
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_SILENT", "true")
    log_evaluation(_config(tmp_path / "off", "unused", "Tracking.wandb_mode=disabled"), report, "w")
    assert not (tmp_path / "off").exists()
    log_evaluation(_config(tmp_path, "unused", "Tracking.wandb_mode=offline"), report, "w")
    (run,) = (tmp_path / "out/wandb").glob("offline-run-*")
    assert list((run / "files/media/images/eval").glob("reliability*.png"))


def test_cli_exports_a_pdparams_file_like_paddleclas_export_model(tmp_path, digits_prepared, weights, capsys):
    from ppipe.cli import main
    from ppipe.inference import create_predictor, predict
    from ppipe.models import create_model

    cfg = _config(tmp_path, digits_prepared)
    out = tmp_path / "inference-out"
    base = [str(QUICKSTART), *(f"-o{o}" for o in (
        f"Global.output_dir={tmp_path}/out", "Global.image_shape=[3, 16, 16]", f"Data.prepared={digits_prepared}",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16", "Export.targets=[paddle-inference-mkldnn]",
        "Export.measure_seconds=0", f"Global.save_inference_dir={out}"))]
    main(["export", *base, f"-oGlobal.pretrained_model={weights.removesuffix('.pdparams')}", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["weights"] == weights and printed["out"] == str(out)
    assert printed["targets"]["paddle-inference-mkldnn"]["status"] == "built"
    assert json.loads((out / "export.json").read_text())["targets"] == printed["targets"]
    assert (out / "config.yaml").is_file()  # what `ppipe predict DIR` reads the preprocessing from
    assert not Path(stages.run_dir(cfg)).exists()  # other weights never write into the run folder

    model = create_model("PPLCNet_x0_25", num_classes=10, pretrained=weights)
    model.eval()
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype("float32")
    ref = model(paddle.to_tensor(x)).numpy()
    got = predict(create_predictor(str(out / "inference")), x)
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    # `ppipe predict DIR` runs the folder, with the preprocessing of the config.yaml beside it
    from PIL import Image

    from ppipe.predict import predict_images

    Image.fromarray(np.full((20, 24, 3), 128, "uint8")).save(tmp_path / "gray.png")
    [result] = predict_images(str(out), [str(tmp_path / "gray.png")], topk=3)
    assert len(result["topk"]) == 3 and "error" not in result

    with pytest.raises(FileNotFoundError, match=r"weights file .*missing does not exist"):
        stages.export(cfg, weights=str(tmp_path / "missing"), out=str(tmp_path / "nowhere"))
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(UserError, match="only other weights' export goes elsewhere"):
        stages.export(cfg, out=str(tmp_path / "nowhere"))
