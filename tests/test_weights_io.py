"""ppipe.weights_io: Paddle and PaddleClas weight files load as `paddle.load` reads them, crafted pickles never run
their payload, and ppipe's own safetensors files round-trip.

The Paddle files are written here by Paddle 3.3.1's `paddle.save` and PaddleClas 2.6's `save_model`, so a Paddle
upgrade that changes what they contain shows up as a refusal in these tests.
"""

from __future__ import annotations

import _codecs
import collections
import os
import pickle
import subprocess

import numpy as np
import paddle
import pytest
import safetensors.numpy

from ppipe.errors import UserError
from ppipe.weights_io import UnsafeWeightsError, load_state, save_state, weights_format


def _net() -> paddle.nn.Layer:
    """Build inside `paddle.utils.unique_name.guard()` for the same parameter (and accumulator) names each time."""
    paddle.seed(0)
    return paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.Flatten(),
                                paddle.nn.Linear(4 * 6 * 6, 5))


def _schedule() -> paddle.optimizer.lr.LRScheduler:
    return paddle.optimizer.lr.LinearWarmup(paddle.optimizer.lr.CosineAnnealingDecay(0.1, 10), 2, 0.0, 0.1)


def _trained(optimizer_cls=paddle.optimizer.Momentum):
    """A net after one optimizer step, its optimizer (with an LR schedule inside) and the schedule."""
    with paddle.utils.unique_name.guard():
        net = _net()
        lr = _schedule()
        opt = optimizer_cls(learning_rate=lr, parameters=net.parameters())
        net(paddle.randn([2, 3, 8, 8])).mean().backward()
        opt.step()
        lr.step()
    return net, opt, lr


def _assert_same(got, want, where="state"):
    """Same structure, types, tensor names, dtypes and values."""
    assert type(got) is type(want), where
    if isinstance(want, dict):
        assert list(got) == list(want), where
        for k in want:
            _assert_same(got[k], want[k], f"{where}[{k!r}]")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, paddle.Tensor):
        assert (got.name, got.dtype) == (want.name, want.dtype), where
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=where)
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype, where
        np.testing.assert_array_equal(got, want, err_msg=where)
    else:
        assert got == want, where


def _assert_loads_as_paddle_does(path):
    for return_numpy in (False, True):
        _assert_same(load_state(path, return_numpy=return_numpy), paddle.load(path, return_numpy=return_numpy))


@pytest.fixture(scope="module")
def paddle_files(tmp_path_factory):
    """One file of each kind `paddle.save` writes for ppipe and PaddleClas, by name."""
    d = tmp_path_factory.mktemp("paddle_files")
    net, momentum, lr = _trained()
    _, adamw, _ = _trained(paddle.optimizer.AdamW)
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    objects = {
        "model.pdparams": (net.state_dict(), {}),
        "model_protocol2.pdparams": (net.state_dict(), {"protocol": 2}),
        "momentum.pdopt": (momentum.state_dict(), {}),
        "adamw.pdopt": (adamw.state_dict(), {}),
        "ema.pdparams": (ema, {}),
        # ppipe's training checkpoint: the optimizer and the schedule in one nested dict
        "ppipe_optimizer.pdopt": ({"optimizer": momentum.state_dict(), "lr": lr.state_dict(), "amp": {}}, {}),
        "ppipe_optimizer_protocol2.pdopt": ({"optimizer": momentum.state_dict(), "lr": lr.state_dict()},
                                            {"protocol": 2}),
        # a state dict inside another object keeps its OrderedDict type
        "nested_state_dicts.pdparams": ({"model": net.state_dict(), "epoch": 3}, {}),
        "tensor.pdtensor": (net[0].weight, {}),
        "metrics.pdstates": ({"metric": np.float32(0.25), "epoch": 1}, {}),
    }
    for name, (obj, kwargs) in objects.items():
        paddle.save(obj, str(d / name), **kwargs)
    return {name: str(d / name) for name in objects}


@pytest.mark.parametrize("name", ["model.pdparams", "model_protocol2.pdparams", "momentum.pdopt", "adamw.pdopt",
                                  "ema.pdparams", "ppipe_optimizer.pdopt", "ppipe_optimizer_protocol2.pdopt",
                                  "nested_state_dicts.pdparams",
                                  "tensor.pdtensor", "metrics.pdstates"])
def test_files_saved_by_paddle_load_as_paddle_load_reads_them(paddle_files, name):
    _assert_loads_as_paddle_does(paddle_files[name])


def test_momentum_state_keeps_its_lr_scheduler_dict(paddle_files):
    state = load_state(paddle_files["momentum.pdopt"])
    assert state["LR_Scheduler"] == {"last_epoch": 1, "last_lr": pytest.approx(0.05),
                                     "LinearWarmup_LR": {"last_epoch": 0, "last_lr": 0.1}}


def test_numpy_1_global_names_load_as_numpy_2_ones(paddle_files, tmp_path):
    """PaddleClas's published weights were pickled by numpy 1.x, which names `numpy.core.multiarray`."""
    data = open(paddle_files["model_protocol2.pdparams"], "rb").read()
    assert b"numpy._core.multiarray\n" in data  # protocol 2: GLOBAL with the names as text
    old = tmp_path / "numpy1.pdparams"
    old.write_bytes(data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    _assert_same(load_state(old, return_numpy=True), paddle.load(paddle_files["model.pdparams"], return_numpy=True))


def test_arrays_cut_into_slices_by_protocol_2_saves_are_joined(tmp_path):
    """Over 2**30 bytes, `paddle.save(..., protocol=2)` cuts an array into `key@@.i` parts; here built small."""
    weight = np.arange(12, dtype=np.float32).reshape(3, 4)
    flat = weight.flatten()
    saved = {"fc.weight@@.0": flat[:8], "fc.weight@@.1": flat[8:], "fc.bias": np.ones(4, np.float32),
             "UnpackBigParamInfor@@": {"fc.weight": {"OriginShape": (3, 4), "slices": ["fc.weight@@.0",
                                                                                       "fc.weight@@.1"]}},
             "StructuredToParameterName@@": {"fc.weight": "linear_0.w_0", "fc.bias": "linear_0.b_0"}}
    path = tmp_path / "big.pdparams"
    path.write_bytes(pickle.dumps(saved, protocol=2))
    _assert_loads_as_paddle_does(str(path))
    np.testing.assert_array_equal(load_state(path, return_numpy=True)["fc.weight"], weight)


def test_loaded_checkpoint_resumes_training_exactly_as_paddle_load_does(paddle_files):
    runs = []
    for load in (paddle.load, load_state):
        with paddle.utils.unique_name.guard():
            net = _net()
            opt = paddle.optimizer.Momentum(learning_rate=_schedule(), parameters=net.parameters())
            net.set_state_dict(load(paddle_files["model.pdparams"]))
            opt.set_state_dict(load(paddle_files["momentum.pdopt"]))
            net(paddle.ones([2, 3, 8, 8])).mean().backward()
            opt.step()  # the saved velocities are picked up by name as the accumulators are created
        runs.append({k: v.numpy() for k, v in net.state_dict().items()})
    _assert_same(runs[1], runs[0])


def test_paddleclas_save_model_checkpoint_loads_and_resumes(tmp_path):
    save_load = pytest.importorskip("paddleclas.ppcls.utils.save_load")
    backbone = pytest.importorskip("paddleclas.ppcls.arch.backbone")
    paddle.seed(0)
    net = backbone.PPLCNet_x0_25(class_num=10)
    opt = paddle.optimizer.Momentum(learning_rate=_schedule(), parameters=net.parameters(),
                                    weight_decay=paddle.regularizer.L2Decay(1e-5))
    net(paddle.randn([2, 3, 32, 32])).mean().backward()
    opt.step()
    # PaddleClas's engine passes the EMA's module; a second net stands in for it.
    save_load.save_model(net, [opt], {"metric": 0.25, "epoch": 1}, str(tmp_path), ema=_net(), prefix="epoch_1")
    prefix = str(tmp_path / "epoch_1")
    for suffix in (".pdparams", ".pdema", ".pdopt", ".pdstates"):
        _assert_loads_as_paddle_does(prefix + suffix)
    resumed = paddle.optimizer.Momentum(learning_rate=0.1, parameters=net.parameters())
    resumed.set_state_dict(load_state(prefix + ".pdopt")[0])  # PaddleClas saves a list, one per optimizer
    net.set_state_dict(load_state(prefix + ".pdema", return_numpy=True))
    assert load_state(prefix + ".pdstates") == {"metric": 0.25, "epoch": 1}


# ---- crafted pickles ---------------------------------------------------------------------------------------

class _Payload:
    """Pickles as a call to `func(*args)`: what a crafted weights file carries."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch(marker) -> str:
    return f"touch {marker}"


PAYLOADS = {
    "os.system": (lambda m: _Payload(os.system, _touch(m)), "posix.system"),
    "builtins.eval": (lambda m: _Payload(eval, f"__import__('os').system({_touch(m)!r})"), "builtins.eval"),
    "builtins.exec": (lambda m: _Payload(exec, f"import os; os.system({_touch(m)!r})"), "builtins.exec"),
    "subprocess.Popen": (lambda m: _Payload(subprocess.Popen, ["touch", str(m)]), "subprocess.Popen"),
    "builtins.getattr": (lambda m: _Payload(getattr, _Payload(__import__, "os"), "system"), "builtins.getattr"),
}


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_crafted_pickle_is_refused_naming_the_file_and_object_and_never_runs(tmp_path, payload, protocol):
    make, refused = PAYLOADS[payload]
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps(make(marker), protocol=protocol))
    with pytest.raises(UnsafeWeightsError, match=rf"{path}.*`{refused}`"):
        load_state(path)
    assert not marker.exists()


def test_payload_nested_in_a_valid_state_dict_is_refused(tmp_path, paddle_files):
    state = paddle.load(paddle_files["model.pdparams"], return_numpy=True)
    state["bn.extra"] = {"deep": [np.zeros(2), _Payload(os.system, _touch(tmp_path / "MARKER"))]}
    path = tmp_path / "model.pdparams"
    path.write_bytes(pickle.dumps(state, protocol=4))
    with pytest.raises(UnsafeWeightsError, match=r"`posix\.system`"):
        load_state(path)
    assert not (tmp_path / "MARKER").exists()


def test_the_crafted_payload_is_live_under_plain_pickle(tmp_path):
    """The refusals above mean something: the same bytes run their payload under `pickle.load`."""
    marker = tmp_path / "MARKER"
    pickle.loads(pickle.dumps(PAYLOADS["os.system"][0](marker), protocol=4))
    assert marker.exists()


@pytest.mark.parametrize("obj, refused", [
    (np.array([1, None], dtype=object), "numpy dtype object"),
    (_Payload(collections.OrderedDict, [("a", 1)]), "OrderedDict called with arguments"),
    (_Payload(np.ndarray, (2,)), "a call to <class 'numpy.ndarray'>"),
    (_Payload(_codecs.encode, "x", "zlib_codec"), "_codecs.encode to 'zlib_codec'"),
    (_Payload(np.dtype, [("a", "f4")]), "numpy.dtype"),
    (collections.Counter(a=1), "`collections.Counter`"),
])
def test_allowed_names_are_refused_beyond_what_paddle_writes(tmp_path, obj, refused):
    path = tmp_path / "w.pdparams"
    path.write_bytes(pickle.dumps({"w": obj}, protocol=4))
    with pytest.raises(UnsafeWeightsError, match=refused):
        load_state(path)


def test_a_dtype_state_that_claims_object_items_is_refused(tmp_path):
    data = pickle.dumps(np.zeros(2, np.int64), protocol=2)
    flags_of_int64 = b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"  # (..., -1, -1, 0) closing the dtype state
    assert flags_of_int64 in data
    path = tmp_path / "w.pdparams"
    path.write_bytes(data.replace(flags_of_int64, flags_of_int64[:-2] + b"\x3ft"))  # 0x3f: NPY_OBJECT_DTYPE_FLAGS
    with pytest.raises(UnsafeWeightsError, match="numpy dtype int64 with state"):
        load_state(path)


def test_refusal_is_a_user_error(tmp_path):
    path = tmp_path / "w.pdparams"
    path.write_bytes(pickle.dumps(_Payload(os.system, "true"), protocol=4))
    with pytest.raises(UserError):
        load_state(path)


@pytest.mark.parametrize("content, what", [
    (b"\x00" * 64, "neither a Paddle weights pickle nor a safetensors"),
    (b"\x80\x04\x95", "damaged"),
    (pickle.dumps({"UnpackBigParamInfor@@": {"w": {"slices": ["w@@.0"]}}}, protocol=2), "not laid out as"),
])
def test_a_file_that_is_not_weights_is_a_user_error_naming_it(tmp_path, content, what):
    path = tmp_path / "w.pdparams"
    path.write_bytes(content)
    with pytest.raises(UserError, match=rf"{path} is .*{what}"):
        load_state(path)


# ---- ppipe's own format ------------------------------------------------------------------------------------

def test_safetensors_model_state_round_trips_under_a_pdparams_name(tmp_path):
    state = _net().state_dict()
    state["half"] = paddle.ones([3], dtype="float16")
    path = tmp_path / "model.pdparams"
    save_state(state, path)
    assert weights_format(path) == "safetensors"
    loaded = load_state(path)
    assert list(loaded) == list(state)
    for k, v in state.items():
        assert loaded[k].dtype == v.dtype
        np.testing.assert_array_equal(loaded[k].numpy(), v.numpy())
    # a model's state is a plain safetensors state dict to any reader, Paddle's own included
    assert sorted(safetensors.numpy.load_file(str(path))) == sorted(state)
    assert sorted(paddle.load(str(path), safetensors=True)) == sorted(state)


def test_safetensors_optimizer_state_round_trips_and_resumes(tmp_path):
    net, opt, lr = _trained()
    training = {"optimizer": opt.state_dict(), "lr": lr.state_dict(), "amp": {"scale": np.float32(1024.0)},
                "shape": (2, 3), "note": None}
    path = tmp_path / "optimizer.pdopt"
    save_state(training, path)
    loaded = load_state(path)
    assert loaded["lr"] == lr.state_dict()
    assert loaded["amp"] == {"scale": 1024.0} and loaded["shape"] == (2, 3) and loaded["note"] is None
    assert loaded["optimizer"]["LR_Scheduler"] == opt.state_dict()["LR_Scheduler"]
    fresh = paddle.optimizer.Momentum(learning_rate=lr, parameters=net.parameters())
    fresh.set_state_dict(loaded["optimizer"])
    for k, v in opt.state_dict().items():
        if isinstance(v, paddle.Tensor):
            np.testing.assert_array_equal(loaded["optimizer"][k].numpy(), v.numpy())


def test_paddles_own_safetensors_files_load(tmp_path):
    state = _net().state_dict()
    path = str(tmp_path / "paddle.safetensors")
    paddle.save(state, path, safetensors=True)
    loaded = load_state(path, return_numpy=True)
    assert sorted(loaded) == sorted(state)


def test_pickles_are_told_from_safetensors_by_content(paddle_files, tmp_path):
    assert weights_format(paddle_files["model.pdparams"]) == "pickle"
    assert weights_format(paddle_files["model_protocol2.pdparams"]) == "pickle"
    path = tmp_path / "w.safetensors"
    save_state({"a": np.zeros(2, np.float32)}, path)
    assert weights_format(path) == "safetensors"


@pytest.mark.parametrize("state, error", [({1: np.zeros(1)}, "keys must be strings"),
                                          ({"a": {"$tensor": 1}}, "not starting with"),
                                          ({"a": {"b": object()}}, "a/b: cannot store a object")])
def test_save_state_names_what_it_cannot_store(tmp_path, state, error):
    with pytest.raises(TypeError, match=error):
        save_state(state, tmp_path / "w.pdparams")
