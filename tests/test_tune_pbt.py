"""`ppipe tune` with Population Based Training on the digits data: the losing trial continues from the winner's
weights and epoch with a perturbed learning rate."""

import json
from pathlib import Path

import pytest
import yaml

from ppipe.config import load_config
from ppipe.storage import sha256_file
from ppipe.tune import load_search_space, run_tune

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
LR = "Optimizer.lr.learning_rate"
SMOOTHING = "Loss.Train.0.CELoss.epsilon"
EPOCHS = 4


def _val_top1(cfg, weights: str, prepared: str) -> float:
    """The val top-1 of `weights`, scored as the training loop validates."""
    from ppipe.build import build_model, exported_model
    from ppipe.evaluate import eval_transform_ops, score, summarize

    model = exported_model(build_model(cfg, pretrained=weights))
    counts = score(model, prepared, "val", eval_transform_ops(cfg), cfg.DataLoader.Eval.sampler.batch_size)
    return summarize(counts)["top1"]


def _continuation_run(out: Path, trial_id: str) -> tuple[dict, dict]:
    """(train.json, config.yaml) of the trial's latest run: the one started after its exploit."""
    (summary,) = out.glob(f"tune/*/trials/{trial_id}/*/train.json")
    return json.loads(summary.read_text()), yaml.safe_load((summary.parent / "config.yaml").read_text())


@pytest.mark.slow
def test_pbt_continues_the_losing_trial_from_the_winners_weights_and_epoch_with_a_perturbed_rate(
        tmp_path, digits32, local_ray):
    cfg = load_config(QUICKSTART, [
        f"Global.output_dir={tmp_path}/out", f"Global.epochs={EPOCHS}", "Optimizer.lr.name=Constant",
        "Optimizer.lr.warmup_epoch=0", "DataLoader.Train.sampler.batch_size=16", "Ray.num_workers=1",
        f"Tune.storage_path={tmp_path}/tune"])
    search = tmp_path / "search.yaml"
    # Two trials: one learns, the other cannot (its targets are smoothed into the uniform distribution), so it
    # ranks last at every perturbation and PBT has it exploit the first once that one has saved a checkpoint.
    search.write_text(f"{LR}: loguniform(0.005, 0.02)\n{SMOOTHING}: grid([0.0, 1.0])\n"
                      "Tune: {num_samples: 1, scheduler: pbt, perturbation_interval: 1, max_concurrent_trials: 2}\n")
    summary = run_tune(cfg, load_search_space(search, cfg), data=digits32)

    trials = {t["trial_id"]: t for t in summary["trials"]}
    assert len(trials) == 2 and all(t["status"] == "completed" and t["epochs"] == EPOCHS for t in trials.values())
    exploits = [e for t in trials.values() for e in t["exploits"] if e["trial_id"] == t["trial_id"]]
    assert exploits, summary["trials"]
    for exploit in exploits:
        trial, donor = trials[exploit["trial_id"]], trials[exploit["donor"]]
        assert donor is not trial
        # The weights it continued from are the donor's at that epoch: they score what the donor reported then.
        assert sha256_file(exploit["weights"]) == exploit["weights_sha256"]
        assert exploit["donor_metrics"]["epoch"] == exploit["epoch"]
        assert _val_top1(cfg, exploit["weights"], digits32) == pytest.approx(exploit["donor_metrics"]["top1"])
        # Explore: the donor's config, its learning rate perturbed.
        assert exploit["config"][SMOOTHING] == exploit["donor_config"][SMOOTHING] == 0.0
        assert exploit["config"][LR] != exploit["donor_config"][LR]
        # Epochs go on from the donor's: never back to the first, through to the last.
        epochs = [h["epoch"] for h in trial["history"]]
        assert epochs.count(1) <= 1 and epochs[-1] == EPOCHS and exploit["epoch"] + 1 in epochs

    last = exploits[-1]
    run, run_cfg = _continuation_run(tmp_path / "out", last["trial_id"])
    assert run_cfg["Global"]["pretrained_model"] == last["weights"]
    assert run_cfg["Optimizer"]["lr"]["learning_rate"] == last["config"][LR]
    assert run["epochs_completed"] == EPOCHS - last["epoch"]

    best = summary["best"]
    assert best["top1"] == max(t["top1"] for t in trials.values())
    assert best["config"] == trials[best["trial_id"]]["config"]
    recipe = load_config(best["recipe"])
    assert recipe.Optimizer.lr.learning_rate == best["config"][LR]
    assert recipe.Loss.Train[0]["CELoss"]["epsilon"] == best["config"][SMOOTHING]
