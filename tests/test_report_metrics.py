"""Evaluation counts and the metrics derived from them: hand-computed cases, and sums across ranks equal to one
evaluation over all the data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ppipe.report import EvalAccumulator, evaluate_logits
from ppipe.report.metrics import calibration_bin_index, expected_calibration_error, focus_classes


def _two_class_logits(p_class1: list[float]) -> np.ndarray:
    """Logits [0, log(p / (1 - p))]: softmax gives class 1 the probability p."""
    p = np.asarray(p_class1)
    return np.stack([np.zeros_like(p), np.log(p / (1 - p))], axis=1).astype(np.float32)


def test_toy_case_gives_hand_computed_top1_confusion_per_class_accuracy_and_ece():
    # confidences 0.9 (right), 0.9 (wrong), 0.7 (right), 0.95 (right): bins 13, 13, 10, 14 of 15
    logits = _two_class_logits([0.9, 0.9, 0.7, 0.95])
    labels = np.array([1, 0, 1, 1])
    report = evaluate_logits(logits, labels, ["cat", "dog"])
    assert report.top1 == 0.75 and report.top5 == 1.0  # k capped at the 2 classes
    assert report.confusion.tolist() == [[0, 1], [0, 3]]
    assert [(c.support, c.correct, c.accuracy) for c in report.per_class] == [(1, 0, 0.0), (3, 3, 1.0)]
    # bin 13: 2 images, confidence 0.9, accuracy 0.5; bin 10: 0.7 vs 1; bin 14: 0.95 vs 1
    assert report.ece == pytest.approx((2 * 0.4 + 0.3 + 0.05) / 4)
    filled = {b.index: (b.count, b.confidence, b.accuracy) for b in report.reliability if b.count}
    assert filled.keys() == {10, 13, 14}
    assert filled[13] == (2, pytest.approx(0.9), 0.5)
    expected_loss = -(math.log(0.9) + math.log(0.1) + math.log(0.7) + math.log(0.95)) / 4
    assert report.loss == pytest.approx(expected_loss, rel=1e-6)


def test_ece_is_zero_when_confidence_matches_accuracy_per_bin():
    assert expected_calibration_error(np.array([4, 0, 2]), np.array([2.0, 0.0, 2.0]), np.array([2, 0, 2])) == 0.0
    assert expected_calibration_error(np.array([4]), np.array([3.0]), np.array([1])) == pytest.approx(0.5)


def test_calibration_bins_are_upper_inclusive_and_cover_zero_and_one():
    assert calibration_bin_index(np.array([0.0, 1 / 30, 1 / 15, 0.5, 1.0]), 15).tolist() == [0, 0, 0, 7, 14]


def test_per_class_accuracy_confusion_pairs_and_worst_classes_by_hand():
    # classes a, b, c, d (d has no image); predictions: a->a, a->b, b->b, c->c, c->a, c->c
    logits = np.full((6, 4), -5.0, np.float32)
    predicted = [0, 1, 1, 2, 0, 2]
    logits[np.arange(6), predicted] = 5.0
    report = evaluate_logits(logits, np.array([0, 0, 1, 2, 2, 2]), ["a", "b", "c", "d"])
    assert report.confusion[:3, :3].tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert [c.accuracy for c in report.per_class] == [0.5, 1.0, pytest.approx(2 / 3), None]
    assert [c.name for c in report.worst_classes(10)] == ["a", "c", "b"]  # d has no image to score
    assert report.mean_class_accuracy == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    pairs = [(p.true_name, p.pred_name, p.count, p.share) for p in report.confused_pairs()]
    assert pairs == [("a", "b", 1, 0.5), ("c", "a", 1, pytest.approx(1 / 3))]


def test_focus_classes_follow_the_most_confused_pairs_when_all_classes_do_not_fit():
    confusion = np.diag(np.full(40, 10))
    confusion[7, 3] = 9
    confusion[20, 3] = 5
    confusion[31, 8] = 2
    names = [str(i) for i in range(40)]
    assert focus_classes(confusion, names, limit=4) == [7, 3, 20, 31]
    assert focus_classes(confusion[:4, :4], names[:4], limit=4) == [0, 1, 2, 3]
    # without enough pairs, the least accurate classes fill up the rest
    assert focus_classes(confusion, names, limit=6) == [7, 3, 20, 31, 8, 0]


def _random_batch(rng, n, num_classes=7):
    return rng.normal(0, 2, (n, num_classes)).astype(np.float32), rng.integers(0, num_classes, n)


def test_merged_rank_accumulators_equal_one_accumulator_over_all_data():
    rng = np.random.default_rng(0)
    batches = [_random_batch(rng, n) for n in (13, 64, 1, 40)]
    whole = EvalAccumulator.empty(7)
    ranks = [EvalAccumulator.empty(7), EvalAccumulator.empty(7)]
    for i, (logits, labels) in enumerate(batches):
        whole.update(logits, labels)
        ranks[i % 2].update(logits, labels)
    merged = ranks[0].merge(ranks[1])
    all_reduced = EvalAccumulator.from_flat(ranks[0].to_flat() + ranks[1].to_flat(), 7)
    names = list("abcdefg")
    expected = whole.finalize(names)
    for combined in (merged, all_reduced):
        assert np.array_equal(combined.confusion, whole.confusion)
        assert np.array_equal(combined.bin_count, whole.bin_count)
        assert np.array_equal(combined.bin_correct, whole.bin_correct)
        assert combined.top5_correct == whole.top5_correct
        report = combined.finalize(names)
        assert (report.top1, report.top5, report.num_images) == (expected.top1, expected.top5, 118)
        assert report.ece == pytest.approx(expected.ece, abs=1e-12)
        assert report.loss == pytest.approx(expected.loss, rel=1e-12)


def test_flat_form_round_trips_and_rejects_a_wrong_length():
    rng = np.random.default_rng(1)
    acc = EvalAccumulator.empty(7)
    acc.update(*_random_batch(rng, 30), loss_sum=12.5)
    back = EvalAccumulator.from_flat(acc.to_flat(), 7)
    assert np.array_equal(back.confusion, acc.confusion) and back.confusion.dtype == np.int64
    assert back.loss_sum == 12.5 and back.top5_correct == acc.top5_correct
    with pytest.raises(ValueError, match="8 classes and 15 bins has 111 values"):
        EvalAccumulator.from_flat(acc.to_flat(), 8)


@pytest.mark.parametrize("logits, labels, message", [
    (np.zeros((2, 3), np.float32), np.array([0, 1]), r"logits must be \[N, 4\]"),
    (np.zeros((2, 4), np.float32), np.array([0.0, 1.0]), "integer class ids"),
    (np.zeros((2, 4), np.float32), np.array([0, 4]), r"labels must lie in \[0, 4\)"),
    (np.array([[np.nan, 0, 0, 0]], np.float32), np.array([0]), "NaN or infinity"),
])
def test_bad_batches_are_refused_with_a_message_naming_the_input(logits, labels, message):
    with pytest.raises(ValueError, match=message):
        EvalAccumulator.empty(4).update(logits, labels)


def test_finalize_refuses_an_empty_evaluation_and_mismatched_class_names():
    with pytest.raises(ValueError, match="saw no images"):
        EvalAccumulator.empty(2).finalize(["a", "b"])
    acc = EvalAccumulator.empty(2)
    acc.update(np.zeros((1, 2), np.float32), np.array([0]))
    with pytest.raises(ValueError, match="class_names has 3 names for 2 classes"):
        acc.finalize(["a", "b", "c"])


def test_target_top1_values_become_flat_scalars_and_must_be_fractions():
    report = evaluate_logits(_two_class_logits([0.9, 0.8]), np.array([1, 0]), ["a", "b"])
    scalars = report.with_target_top1({"onnx": 0.5, "paddle-inference-mkldnn-int8": 0.4}).scalars()
    assert scalars["target_top1/onnx"] == 0.5 and scalars["target_top1/paddle-inference-mkldnn-int8"] == 0.4
    assert scalars["top1"] == 0.5 and scalars["num_classes"] == 2
    with pytest.raises(ValueError, match="top-1 of target 'onnx' must be a fraction"):
        report.with_target_top1({"onnx": 75.0})
