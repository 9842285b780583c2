"""`ppipe train`, `ppipe evaluate` and `ppipe tune` without --json: a few lines for a person
(`ppipe.train.summary`, `ppipe.evaluation.summary`, `ppipe.tune.summary`); --json prints the documents themselves."""

from __future__ import annotations

from ppipe.evaluation.summary import summary_lines as evaluation_lines
from ppipe.train.summary import summary_lines as train_lines
from ppipe.tune.summary import summary_lines as tune_lines

EVALUATION = {
    "model": "PPLCNet_x0_25", "split": "val", "weights": "/runs/quickstart/model.pdparams",
    "top1": 0.9444444, "top5": 0.9972222, "loss": 0.2843835, "ece": 0.1166793, "mean_class_accuracy": 0.9444981,
    "worst_class_accuracy": 0.8611111, "num_images": 360, "num_classes": 10, "recall@3": 0.99,
    "target_top1/onnx": 0.9444444, "targets_not_scored": {"tensorrt": "no runtime"},
    "targets": {
        "onnx": {"status": "built", "deployable": True, "reason": None, "latency_ms_b1": 0.068,
                 "throughput_b32": 24850.95, "top1": 0.9444444},
        "paddle-inference-mkldnn-int8": {"status": "refused", "deployable": False, "top1": 0.0972,
                                         "reason": "refused by the export's INT8 accuracy gate"},
        "tensorrt": {"status": "built", "deployable": True, "top1": None,
                     "reason": "not scored: no runtime to score tensorrt with on the CPU workers"},
    },
}


def test_evaluation_headline_class_figures_extra_metrics_and_one_line_per_target():
    assert evaluation_lines(EVALUATION) == [
        "PPLCNet_x0_25 on 360 val images (10 classes): top-1 0.9444, top-5 0.9972, loss 0.2844",
        "  weights: /runs/quickstart/model.pdparams",
        "  class accuracy: mean 0.9445, worst 0.8611; calibration error (ECE) 0.1167",
        "  recall@3 0.9900",
        "deployment targets, scored on the same images:",
        "  onnx                          top-1 0.9444, 0.068 ms at batch 1, 24851 img/s at batch 32",
        "  paddle-inference-mkldnn-int8  refused: refused by the export's INT8 accuracy gate",
        "  tensorrt                      built: not scored: no runtime to score tensorrt with on the CPU workers",
    ]


def test_evaluation_of_other_weights_has_no_target_lines():
    document = {k: v for k, v in EVALUATION.items() if k not in ("targets", "recall@3")}
    lines = evaluation_lines({**document, "targets": {}})
    assert len(lines) == 3 and not any("target" in line for line in lines)


def test_training_says_what_ran_how_far_how_well_how_fast_and_where():
    result = {"model": "PPLCNet_x0_25", "epochs_completed": 30, "top1": 0.94444, "checkpoint": "/runs/ray/ck_7",
              "restarts": 1, "train_img_per_s": 1089.56, "run_name": "quickstart-1", "run_dir": "/runs/quickstart",
              "precision": "float32"}
    assert train_lines(result) == [
        "trained PPLCNet_x0_25 (float32) for 30 epoch(s) in run quickstart-1, after 1 worker restart: "
        "val top-1 0.9444, 1089.6 img/s",
        "  run folder: /runs/quickstart",
        "  last checkpoint: /runs/ray/ck_7"]
    assert "not validated" in train_lines({**result, "top1": None, "restarts": 0})[0]
    assert "restart" not in train_lines({**result, "restarts": 0})[0]


def test_tune_lists_each_trial_with_its_values_and_exploits_then_the_best_recipe():
    summary = {
        "experiment": "/runs/tune/quickstart-tune",
        "trials": [
            {"trial_id": "a_00000", "status": "completed", "epochs": 4, "top1": 0.93,
             "config": {"Optimizer.lr.learning_rate": 0.0123456, "Loss.Train.0.CELoss.epsilon": 0.0},
             "exploits": [], "error": None},
            {"trial_id": "a_00001", "status": "error", "epochs": 1, "top1": None,
             "config": {"Optimizer.lr.learning_rate": 0.01, "Loss.Train.0.CELoss.epsilon": 0.0},
             "exploits": [{"donor": "a_00000", "epoch": 1}], "error": "RuntimeError: worker died\ntraceback"},
        ],
        "best": {"trial_id": "a_00000", "top1": 0.93, "recipe": "/runs/tune/quickstart-tune/best.yaml",
                 "config": {"Optimizer.lr.learning_rate": 0.0123456, "Loss.Train.0.CELoss.epsilon": 0.0}},
    }
    assert tune_lines(summary) == [
        "2 trial(s) in /runs/tune/quickstart-tune",
        "  a_00000  completed  4 epoch(s)  metric 0.9300  Optimizer.lr.learning_rate=0.01235, "
        "Loss.Train.0.CELoss.epsilon=0",
        "  a_00001  error  1 epoch(s)  no metric  Optimizer.lr.learning_rate=0.01, Loss.Train.0.CELoss.epsilon=0"
        "  exploited a_00000 at epoch 1  error: RuntimeError: worker died",
        "best: trial a_00000 with metric 0.9300, Optimizer.lr.learning_rate=0.01235, Loss.Train.0.CELoss.epsilon=0",
        "  its recipe: /runs/tune/quickstart-tune/best.yaml"]
    assert tune_lines({**summary, "best": None})[-1] == "best: none (no trial reported the metric)"
