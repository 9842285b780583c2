"""`ppipe tune` on the digits data: a real Tune search with ASHA, each trial a Ray Train run."""

import json
from pathlib import Path

import pytest
import yaml

from ppipe.config import load_config
from ppipe.tune import load_search_space, run_tune

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


@pytest.mark.slow
def test_asha_search_stops_trials_early_and_reports_the_best_completed_trial(tmp_path, digits_prepared, local_ray):
    cfg = load_config(QUICKSTART, [
        f"Global.output_dir={tmp_path}/out", "Global.image_shape=[3, 16, 16]", "Global.epochs=3",
        "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
        "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16", "Optimizer.lr.warmup_epoch=0",
        "DataLoader.Train.sampler.batch_size=64", "Ray.num_workers=1", f"Tune.storage_path={tmp_path}/tune"])
    search = tmp_path / "search.yaml"
    search.write_text("Optimizer.lr.learning_rate: grid([0.0005, 0.003, 0.05, 0.3])\n"
                      "Tune: {num_samples: 1, scheduler: asha, grace_period: 1, reduction_factor: 2,"
                      " max_concurrent_trials: 2}\n")
    summary = run_tune(cfg, load_search_space(search, cfg), data=digits_prepared)

    trials = summary["trials"]
    assert len(trials) == 4
    assert len({t["config"]["Optimizer.lr.learning_rate"] for t in trials}) == 4
    assert any(t["status"] == "early_stopped" and t["epochs"] < 3 for t in trials), trials
    completed = [t for t in trials if t["status"] == "completed"]
    assert completed and all(t["epochs"] == 3 for t in completed)
    assert summary["best"]["top1"] == max(t["top1"] for t in completed)
    best_recipe = load_config(summary["best"]["recipe"])
    assert best_recipe.Optimizer.lr.learning_rate == summary["best"]["config"]["Optimizer.lr.learning_rate"]
    stored = json.loads(Path(summary["experiment"], "results.json").read_text())
    assert stored["best"] == summary["best"]
    assert yaml.safe_load(Path(summary["best"]["recipe"]).read_text())["Arch"]["name"] == "PPLCNet_x0_25"
