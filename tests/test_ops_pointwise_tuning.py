"""1x1 convolutions choose their kernel per shape by timing (ppipe.ops.pointwise_tuning): the timing protocol
alternates and keeps the fastest runs, near-ties keep the default, a shape is decided once per process (and
once per machine through the store), the budget bounds the timing, and a model whose 1x1 convolutions mix both
kernels trains as on Paddle's kernel alone."""

from __future__ import annotations

import copy
import itertools
import json
import logging

import numpy as np
import paddle
import pytest

from ppipe.ops import onednn, pointwise_tuning
from ppipe.ops.pointwise_tuning import (ONEDNN, PADDLE, DecisionStore, PointwiseShape, PointwiseTuner,
                                        faster_kernel, time_kernels)

SHAPE = PointwiseShape(16, 32, 14, 14, (1, 1), (0, 0, 0, 0), 32, True)


def _shape(**changes) -> PointwiseShape:
    return SHAPE._replace(**changes)


class _FakeClock:
    """perf_counter for `time_kernels`: each kernel's run advances it by that kernel's next duration."""

    def __init__(self, durations: dict[str, list[float]]):
        self.now, self.durations, self.calls = 0.0, {k: iter(v) for k, v in durations.items()}, []

    def runs(self):
        return {name: (lambda name=name: self._run(name)) for name in self.durations}

    def _run(self, name):
        self.calls.append(name)
        self.now += next(self.durations[name])

    def __call__(self):
        return self.now


def test_timing_warms_up_each_kernel_then_alternates_and_keeps_the_fastest_run():
    # warm-up runs (first value) are slow and not counted; the load spike (9.0) hits one timed run only
    clock = _FakeClock({PADDLE: [50.0, 2.0, 9.0, 2.5], ONEDNN: [70.0, 3.0, 1.5, 9.0]})
    seconds = time_kernels(clock.runs(), timed_runs=3, clock=clock)
    assert seconds == {PADDLE: 2.0, ONEDNN: 1.5}
    assert clock.calls == [PADDLE, ONEDNN, PADDLE, ONEDNN, ONEDNN, PADDLE, PADDLE, ONEDNN]


@pytest.mark.parametrize("paddle_s, onednn_s, default, expected", [
    (1.0, 0.5, PADDLE, ONEDNN),    # clearly faster: chosen
    (1.0, 0.97, PADDLE, PADDLE),   # within the margin: the default holds
    (0.97, 1.0, ONEDNN, ONEDNN),
    (0.5, 1.0, ONEDNN, PADDLE),
    (1.0, 1.2, PADDLE, PADDLE),
])
def test_the_faster_kernel_must_beat_the_default_by_the_margin(paddle_s, onednn_s, default, expected):
    assert faster_kernel({PADDLE: paddle_s, ONEDNN: onednn_s}, default, margin=0.05) == expected


def _counting_runs(seconds: dict[str, float], log: list):
    """A `runs` factory for PointwiseTuner.kernel whose timing (faked through `time_kernels`) gives `seconds`."""
    def runs():
        log.append(seconds)
        return seconds
    return runs


@pytest.fixture
def fake_timing(monkeypatch):
    """`time_kernels` answers the seconds the runs factory gives, without running anything."""
    monkeypatch.setattr(pointwise_tuning, "time_kernels", lambda runs: dict(runs))
    monkeypatch.setattr(pointwise_tuning, "cpu_vendor", lambda: "GenuineIntel")  # untimed default: paddle


def test_a_shape_is_timed_once_and_keeps_its_kernel_whatever_later_timings_would_say(fake_timing):
    tuner, timed = PointwiseTuner(store=None), []
    assert tuner.kernel(SHAPE, _counting_runs({PADDLE: 2.0, ONEDNN: 1.0}, timed)) == ONEDNN
    for _ in range(5):  # noise that would now favour Paddle is never measured
        assert tuner.kernel(SHAPE, _counting_runs({PADDLE: 1.0, ONEDNN: 2.0}, timed)) == ONEDNN
    assert len(timed) == 1 and tuner.known(SHAPE) == ONEDNN
    assert tuner.kernel(_shape(batch_bucket=8), _counting_runs({PADDLE: 1.0, ONEDNN: 2.0}, timed)) == PADDLE
    assert len(timed) == 2 and tuner.timed == 2


def test_timing_stops_at_the_budget_and_later_shapes_take_the_untimed_default(fake_timing, caplog):
    tuner, timed = PointwiseTuner(store=None, max_timed_shapes=2), []
    with caplog.at_level(logging.INFO, logger=pointwise_tuning.__name__):
        kernels = [tuner.kernel(_shape(height=h), _counting_runs({PADDLE: 2.0, ONEDNN: 1.0}, timed))
                   for h in (7, 14, 28, 56)]
    assert kernels == [ONEDNN, ONEDNN, PADDLE, PADDLE] and len(timed) == 2
    assert caplog.text.count("the most this process times") == 1


def test_stored_decisions_are_taken_by_the_next_process_without_timing(fake_timing, tmp_path):
    store = DecisionStore(tmp_path / "decisions.json")
    first, timed = PointwiseTuner(store), []
    first.kernel(SHAPE, _counting_runs({PADDLE: 2.0, ONEDNN: 1.0}, timed))
    first.kernel(_shape(input_grad=False), _counting_runs({PADDLE: 1.0, ONEDNN: 2.0}, timed))
    document = json.loads(store.path.read_text())
    assert document["decisions"][SHAPE.key()] == {"kernel": ONEDNN, "paddle_ms": 2000.0, "onednn_ms": 1000.0}
    assert document["cpu"] == pointwise_tuning.cpu_model()
    second = PointwiseTuner(DecisionStore(store.path))
    assert second.kernel(SHAPE, _counting_runs({PADDLE: 1.0, ONEDNN: 2.0}, timed)) == ONEDNN
    assert second.kernel(_shape(input_grad=False), _counting_runs({}, timed)) == PADDLE
    assert len(timed) == 2 and (second.timed, second.stored) == (0, 2)
    assert "0 shapes timed" in second.describe() and "2 from" in second.describe()


def test_an_unreadable_store_is_named_and_rewritten(fake_timing, tmp_path, caplog):
    path = tmp_path / "decisions.json"
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        kernel = PointwiseTuner(DecisionStore(path)).kernel(SHAPE, _counting_runs({PADDLE: 2.0, ONEDNN: 1.0}, []))
    assert kernel == ONEDNN and str(path) in caplog.text
    assert json.loads(path.read_text())["decisions"][SHAPE.key()]["kernel"] == ONEDNN


def test_the_store_is_kept_per_cpu_model_and_thread_count(monkeypatch, tmp_path):
    monkeypatch.setenv("PPIPE_CACHE_DIR", str(tmp_path))
    paths = set()
    for model, threads in itertools.product(("Xeon A", "EPYC B"), ("1", "2")):
        monkeypatch.setattr(pointwise_tuning, "cpu_model", lambda m=model: m)
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        paths.add(pointwise_tuning.default_store().path)
    assert len(paths) == 4 and all(p.parent == tmp_path / "ops" / "pointwise" for p in paths)


def test_untimed_shapes_go_to_paddles_gemm_on_intel_cpus_only(monkeypatch):
    for vendor, expected in (("GenuineIntel", PADDLE), ("AuthenticAMD", ONEDNN), ("HygonGenuine", ONEDNN),
                             (None, PADDLE)):
        monkeypatch.setattr(pointwise_tuning, "cpu_vendor", lambda v=vendor: v)
        assert pointwise_tuning.untimed_kernel() == expected, vendor


def test_batch_sizes_share_a_decision_by_power_of_two_bucket():
    assert [pointwise_tuning.batch_bucket(n) for n in (1, 2, 3, 17, 32, 33, 64)] == [1, 2, 4, 32, 32, 64, 64]


@pytest.fixture
def fresh_tuner(monkeypatch, tmp_path):
    """A process tuner of its own (an empty store under tmp_path), with 1x1 convolutions timed per shape."""
    monkeypatch.delenv("PPIPE_POINTWISE_CONV", raising=False)
    tuner = PointwiseTuner(DecisionStore(tmp_path / "decisions.json"))
    monkeypatch.setattr(pointwise_tuning, "_process_tuner", tuner)
    return tuner


def _conv_pair(stride=1, bias=True):
    paddle.seed(11)
    plain = paddle.nn.Conv2D(12, 20, 1, stride=stride, bias_attr=None if bias else False)
    fast = copy.deepcopy(plain)
    assert onednn.use_onednn_kernels(fast)["conv_1x1_timed"] == 1
    assert type(fast) is onednn.PointwiseConv2D and list(fast.state_dict()) == list(plain.state_dict())
    return plain, fast


@pytest.mark.parametrize("stride, bias", [(1, True), (2, False)])
def test_timing_a_layer_in_training_changes_no_result_and_no_random_draw(fresh_tuner, stride, bias):
    plain, fast = _conv_pair(stride, bias)
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((3, 12, 9, 9)).astype("float32"))
    side = (9 - 1) // stride + 1
    g = paddle.to_tensor(np.random.default_rng(1).standard_normal((3, 20, side, side)).astype("float32"))
    results = []
    for net in (plain, fast):
        net.train()
        net.clear_gradients()
        paddle.seed(5)
        xi = x.detach()
        xi.stop_gradient = False
        (net(xi) * g).sum().backward()
        results.append([xi.grad.numpy(), net.weight.grad.numpy(), paddle.rand([2]).numpy().tolist()])
    assert fresh_tuner.timed == 1 and fast._ppipe_kernel in (PADDLE, ONEDNN)
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-4, atol=1e-4)
    assert results[1][2] == results[0][2]  # the timing drew no random numbers
    stored = json.loads(fresh_tuner.store.path.read_text())["decisions"]
    assert list(stored) == [pointwise_tuning.PointwiseShape(12, 20, 9, 9, (stride, stride), (0, 0, 0, 0), 4,
                                                            True).key()]


@pytest.mark.parametrize("kernel", [PADDLE, ONEDNN])
def test_either_kernel_gives_paddles_results_and_evaluation_is_never_timed(fresh_tuner, monkeypatch, kernel):
    other = ONEDNN if kernel == PADDLE else PADDLE
    monkeypatch.setattr(pointwise_tuning, "time_kernels", lambda runs: {kernel: 1.0, other: 2.0})
    plain, fast = _conv_pair()
    x = paddle.randn([2, 12, 5, 5])
    fast.eval()
    np.testing.assert_allclose(fast(x).numpy(), plain(x).numpy(), rtol=1e-4, atol=1e-5)
    with paddle.no_grad():
        fast.train()
        fast(x)
    assert fresh_tuner.timed == 0 and fast._ppipe_kernel is None
    fast.train()
    x.stop_gradient = False
    y = fast(x)
    assert fresh_tuner.timed == 1 and fast._ppipe_kernel == kernel
    np.testing.assert_allclose(y.numpy(), plain(x).numpy(), rtol=1e-4, atol=1e-5)
    (dx,), (rdx,) = paddle.grad(y, [x], paddle.ones_like(y)), paddle.grad(plain(x), [x], paddle.ones_like(y))
    np.testing.assert_allclose(dx.numpy(), rdx.numpy(), rtol=1e-4, atol=1e-5)
    fast.eval()  # evaluation of a shape decided in training runs on that shape's kernel, untimed
    calls = []
    monkeypatch.setattr(onednn.OneDNNConv2D, "forward", lambda self, x: calls.append(ONEDNN) or plain(x))
    monkeypatch.setattr(onednn, "untimed_kernel", lambda: other)
    fast(x.detach())
    assert calls == ([ONEDNN] if kernel == ONEDNN else []) and fresh_tuner.timed == 1


def test_a_model_mixing_both_kernels_trains_like_paddles_and_logs_the_split(fresh_tuner, monkeypatch, caplog):
    from tests.test_ops_onednn import _assert_as_accurate_as_paddle, _pair

    winners = itertools.cycle([ONEDNN, PADDLE])
    monkeypatch.setattr(pointwise_tuning, "time_kernels",
                        lambda runs: (lambda w: {w: 1.0, (PADDLE if w == ONEDNN else ONEDNN): 2.0})(next(winners)))
    monkeypatch.setattr(pointwise_tuning, "cpu_vendor", lambda: "GenuineIntel")
    plain, fast, counts = _pair("MobileNetV3_small_x0_35")
    assert counts["conv_1x1_timed"] > 4 and onednn.pointwise_kernels(fast)["undecided"] == counts["conv_1x1_timed"]
    with caplog.at_level(logging.INFO, logger=onednn.__name__):
        _assert_as_accurate_as_paddle("MobileNetV3_small_x0_35", plain, fast, paddle.randn([4, 3, 64, 64]))
    split = onednn.pointwise_kernels(fast)
    assert split["undecided"] == 0 and split[ONEDNN] > 0 and split[PADDLE] > 0
    assert (f"{split[ONEDNN]} on oneDNN, {split[PADDLE]} on Paddle's GEMM "
            f"({fresh_tuner.timed} shapes timed") in caplog.text
    assert caplog.text.count("each shape's kernel chosen by timing") == 1
