"""The evaluate stage's files (DVC metrics and plots, PNG figures) and the wandb logging of a report."""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from ppipe.report import evaluate_logits, log_to_wandb, write_eval_outputs
from ppipe.report import outputs
from ppipe.report.plots import render_plots


def _synthetic_report(num_classes: int, num_images: int, seed: int = 0, names=None):
    """A model that is right most of the time and confuses class k with k+1 for some images."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_images)
    logits = rng.normal(0, 1, (num_images, num_classes)).astype(np.float32)
    logits[np.arange(num_images), labels] += 3.0
    swapped = rng.random(num_images) < 0.1
    logits[swapped, (labels[swapped] + 1) % num_classes] += 5.0
    names = names or [f"n{1440764 + i:08d} a rather long class name {i}" for i in range(num_classes)]
    return evaluate_logits(logits, labels, names)


@pytest.fixture(scope="module")
def digits_report():
    return _synthetic_report(10, 360, names=[str(d) for d in range(10)])


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_eval_outputs_hold_flat_metrics_and_the_dvc_plot_tables(tmp_path, digits_report):
    written = write_eval_outputs(digits_report, str(tmp_path / "eval"))
    assert written == sorted(["metrics.json", "per_class.csv", "confusion_pairs.csv", "confusion_focus.csv",
                              "reliability.csv", "confusion_matrix.png", "reliability.png", "worst_classes.png"])
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert metrics["top1"] == digits_report.top1 and metrics["ece"] == digits_report.ece
    assert all(isinstance(v, (int, float)) for v in metrics.values())
    per_class = _read_csv(tmp_path / "eval/per_class.csv")
    assert [int(r["support"]) for r in per_class] == [c.support for c in digits_report.per_class]
    pairs = _read_csv(tmp_path / "eval/confusion_pairs.csv")
    top = digits_report.confused_pairs(1)[0]
    assert (pairs[0]["true_name"], pairs[0]["pred_name"], int(pairs[0]["count"])) == (top.true_name, top.pred_name,
                                                                                      top.count)
    # DVC's confusion template counts rows: one per image, so the counts come back out of the table
    focus = _read_csv(tmp_path / "eval/confusion_focus.csv")
    assert len(focus) == digits_report.num_images
    assert sum(r["actual"] == top.true_name and r["predicted"] == top.pred_name for r in focus) == top.count
    reliability = _read_csv(tmp_path / "eval/reliability.csv")
    assert sum(int(r["count"]) for r in reliability) == digits_report.num_images


def test_rewriting_replaces_the_directory_and_a_failed_write_leaves_the_old_one(tmp_path, digits_report, monkeypatch):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "stale.csv").write_text("old run")
    write_eval_outputs(digits_report, str(out))
    assert not (out / "stale.csv").exists()
    before = {p: (out / p).read_bytes() for p in os.listdir(out)}
    # the second file cannot be written: nothing of the half-built directory may show
    monkeypatch.setattr(outputs, "eval_files", lambda report: {"metrics.json": b"{}", "missing/x.png": b""})
    with pytest.raises(FileNotFoundError):
        write_eval_outputs(digits_report, str(out))
    assert {p: (out / p).read_bytes() for p in os.listdir(out)} == before
    assert os.listdir(tmp_path) == ["eval"]


def _assert_legible_png(data: bytes, min_size: tuple[int, int]):
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
    pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.std() > 20  # not a blank canvas


def test_figures_render_for_ten_classes_and_for_the_top_classes_of_a_thousand(digits_report):
    imagenet_like = _synthetic_report(1000, 3000, seed=1)
    assert len(imagenet_like.focus_classes()) == 25
    for report in (digits_report, imagenet_like):
        pngs = render_plots(report)
        assert set(pngs) == {"confusion_matrix.png", "reliability.png", "worst_classes.png"}
        for data in pngs.values():
            _assert_legible_png(data, (600, 400))


def test_log_to_wandb_writes_scalars_images_and_the_per_class_table_offline(tmp_path, monkeypatch, digits_report):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(project="ppipe-report-test", dir=str(tmp_path), mode="offline", reinit="finish_previous")
    try:
        log_to_wandb(digits_report, run)
        assert run.summary["eval/top1"] == digits_report.top1
    finally:
        run.finish()
    run_dirs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1
    media = run_dirs[0] / "files/media"
    images = sorted(p.name.split("_")[0] for p in (media / "images/eval").glob("*.png"))
    assert images == ["confusion", "reliability", "worst"]
    table = next((media / "table/eval").glob("per_class_*.table.json"))
    assert len(json.loads(table.read_text())["data"]) == 10
