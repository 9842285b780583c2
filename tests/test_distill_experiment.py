"""SSLD's claim on the embedded data: a student distilled from a trained, larger teacher beats the same student
trained alone for the same epochs (mean top-1 over 3 seeds on the digits val split).

Measured 2026-11-28 on the project machine (2 cores): teacher PPLCNet_x0_5 (16 epochs) top-1 0.928; student
PPLCNet_x0_25 after 10 epochs, seeds 0/1/2: alone 0.642 / 0.447 / 0.539 (mean 0.543), distilled with
DistillationDMLLoss + DistillationGTCELoss 0.653 / 0.444 / 0.706 (mean 0.601). Again after the CPU kernels
changed (fused BatchNorm + activation, third session): teacher 0.900; alone 0.539 / 0.575 / 0.278 (mean
0.464), distilled 0.561 / 0.672 / 0.381 (mean 0.538). After the frozen teacher stayed in eval mode under
DataParallel too (2 workers; before, DataParallel's train() put its BatchNorm in training mode): alone the same,
distilled 0.639 / 0.767 / 0.794 (mean 0.733).

An experiment, not a unit test: 4-9 minutes on 2 cores, so it is marked `experiment` and run on demand
(`pytest -m experiment tests/test_distill_experiment.py -s`), not in CI. It prints both means.
"""

from pathlib import Path

import pytest
import yaml

from ppipe import stages
from ppipe.config import load_config

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
SEEDS = (0, 1, 2)
TEACHER = "PPLCNet_x0_5"
STUDENT_EPOCHS = 10


def _recipe(tmp_path, prepared, run, arch, loss, epochs, seed):
    data = yaml.safe_load(QUICKSTART.read_text())
    data["Arch"] = arch
    data["Loss"]["Train"] = loss
    if arch["name"] == "DistillationModel":  # the quickstart's TopkAcc reads one model's logits
        data["Metric"] = {split: [{"DistillationTopkAcc": {"model_key": "Student", "topk": [1, 5]}}]
                          for split in ("Train", "Eval")}
    return load_config(data=data, overrides=[
        f"Global.output_dir={tmp_path}/out", f"Global.epochs={epochs}", f"Global.seed={seed}",
        "Global.eval_interval=100", f"Data.prepared={prepared}", f"Ray.run_name={run}", "Optimizer.lr.warmup_epoch=1",
        "Optimizer.lr.learning_rate=0.1"])


@pytest.mark.experiment
@pytest.mark.timeout(3600)
def test_distilled_student_beats_the_student_trained_alone(tmp_path, digits32, local_ray):
    teacher_cfg = _recipe(tmp_path, digits32, "teacher", {"name": TEACHER, "class_num": 10},
                          [{"CELoss": {"weight": 1.0, "epsilon": 0.1}}], epochs=16, seed=0)
    teacher = stages.train(teacher_cfg)
    teacher_weights = Path(stages.run_dir(teacher_cfg)) / "model.pdparams"

    alone, distilled = [], []
    for seed in SEEDS:
        cfg = _recipe(tmp_path, digits32, f"alone{seed}", {"name": "PPLCNet_x0_25", "class_num": 10},
                      [{"CELoss": {"weight": 1.0, "epsilon": 0.1}}], STUDENT_EPOCHS, seed)
        alone.append(stages.train(cfg)["top1"])
        arch = {"name": "DistillationModel", "class_num": 10, "freeze_params_list": [True, False],
                "models": [{"Teacher": {"name": TEACHER, "pretrained": str(teacher_weights)}},
                           {"Student": {"name": "PPLCNet_x0_25"}}],
                "infer_model_name": "Student"}
        loss = [{"DistillationDMLLoss": {"weight": 1.0, "model_name_pairs": [["Student", "Teacher"]]}},
                {"DistillationGTCELoss": {"weight": 1.0, "model_names": ["Student"]}}]
        cfg = _recipe(tmp_path, digits32, f"distilled{seed}", arch, loss, STUDENT_EPOCHS, seed)
        distilled.append(stages.train(cfg)["top1"])

    mean_alone, mean_distilled = sum(alone) / len(alone), sum(distilled) / len(distilled)
    print(f"\nteacher {TEACHER} top-1 {teacher['top1']:.4f}; student PPLCNet_x0_25 after {STUDENT_EPOCHS} "
          f"epochs: alone {alone} (mean {mean_alone:.4f}), distilled {distilled} (mean {mean_distilled:.4f})")
    assert teacher["top1"] > mean_alone
    assert mean_distilled > mean_alone
