"""Hostile recipes and overrides: every value that cannot work is refused when the recipe loads, in one line that
names the key (and the override, as typed) and what was expected, before any Ray worker starts."""

import dataclasses
import os
import re
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
import yaml

from ppipe.config import ConfigError, check_class_num, load_config
from ppipe.config import schema
from ppipe.config.ranges import RANGE, check_range

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"

# (override, what the error must say): the key, and the range or type it expected
OUT_OF_RANGE = [
    ("Optimizer.lr.learning_rate=-0.1", r"Optimizer\.lr\.learning_rate: expected a learning rate >= 0, got -0\.1"),
    ("Optimizer.lr.learning_rate=.nan", r"Optimizer\.lr\.learning_rate: expected a finite number, got nan"),
    ("Optimizer.lr.learning_rate=.inf", r"Optimizer\.lr\.learning_rate: expected a finite number, got inf"),
    ("Optimizer.lr.warmup_start_lr=-1e-3", r"Optimizer\.lr\.warmup_start_lr: expected a learning rate >= 0"),
    ("Optimizer.lr.eta_min=-1e-5", r"Optimizer\.lr\.eta_min: expected a learning rate >= 0"),
    ("Optimizer.lr.values=[0.1,-0.01]", r"Optimizer\.lr\.values\[1\]: expected a learning rate >= 0, got -0\.01"),
    ("Optimizer.lr.warmup_epoch=-1", r"Optimizer\.lr\.warmup_epoch: expected >= 0, got -1"),
    ("Global.class_num=-3", r"Global\.class_num: expected >= 1, got -3"),
    ("Arch.class_num=0", r"Arch\.class_num: expected >= 1, got 0"),
    ("Global.image_shape=[3,0,32]", r"Global\.image_shape\[1\]: expected a size >= 1, got 0"),
    ("Global.image_shape=[3,32]", r"Global\.image_shape: expected a list of 3 values, got 2"),
    ("Global.image_shape.2=-32", r"Global\.image_shape\.2: expected a size >= 1, got -32"),
    ("Export.input_shape=[3,32,32,1]", r"Export\.input_shape: expected a list of 3 values, got 4"),
    ("Global.eval_interval=0", r"Global\.eval_interval: expected >= 1, got 0"),
    ("Global.save_interval=0", r"Global\.save_interval: expected >= 1, got 0"),
    ("Global.print_batch_step=-1", r"Global\.print_batch_step: expected >= 1, got -1"),
    ("Global.checkpoint_every_steps=0", r"Global\.checkpoint_every_steps: expected >= 1, got 0"),
    ("Global.epochs=0", r"Global\.epochs: expected >= 1, got 0"),
    ("Ray.cpus_per_worker=0", r"Ray\.cpus_per_worker: expected > 0, got 0\.0"),
    ("Ray.cpus_per_worker=-2", r"Ray\.cpus_per_worker: expected > 0, got -2\.0"),
    ("Ray.threads_per_worker=0", r"Ray\.threads_per_worker: expected >= 1, got 0"),
    ("Ray.num_workers=-1", r"Ray\.num_workers: expected >= 0, got -1"),
    ("DataLoader.Train.sampler.batch_size=0", r"DataLoader\.Train\.sampler\.batch_size: expected >= 1, got 0"),
    ("DataLoader.Eval.sampler.batch_size=-8", r"DataLoader\.Eval\.sampler\.batch_size: expected >= 1, got -8"),
    ("DataLoader.Train.loader.num_workers=-1", r"DataLoader\.Train\.loader\.num_workers: expected >= 0, got -1"),
    ("Optimizer.regularizer.coeff=-1e-4", r"Optimizer\.regularizer\.coeff: expected a weight decay >= 0"),
    ("Optimizer.weight_decay=-0.05", r"Optimizer\.weight_decay: expected a weight decay >= 0"),
    ("Optimizer.momentum=1.0", r"Optimizer\.momentum: expected >= 0 and < 1, got 1\.0"),
    ("Optimizer.momentum=-0.9", r"Optimizer\.momentum: expected >= 0 and < 1, got -0\.9"),
    ("EMA.decay=1.5", r"EMA\.decay: expected >= 0 and < 1, got 1\.5"),
    ("Tune.reduction_factor=1", r"Tune\.reduction_factor: expected >= 2, got 1"),
]


@pytest.mark.parametrize("override,message", OUT_OF_RANGE, ids=[o for o, _ in OUT_OF_RANGE])
def test_a_value_that_cannot_work_is_refused_at_load_naming_the_override_the_key_and_the_range(override, message):
    with pytest.raises(ConfigError, match=rf"^override {re.escape(repr(override))}: {message}"):
        load_config(QUICKSTART, [override])


@pytest.mark.parametrize("section,key,value,message", [
    ("Optimizer", "momentum", 1.5, r"^Optimizer\.momentum: expected >= 0 and < 1, got 1\.5$"),
    ("Global", "class_num", -3, r"^Global\.class_num: expected >= 1, got -3$"),
    ("Ray", "cpus_per_worker", 0, r"^Ray\.cpus_per_worker: expected > 0, got 0\.0$"),
    ("Global", "image_shape", [3, 224], r"^Global\.image_shape: expected a list of 3 values, got 2 \(\[3, 224\]\)$"),
])
def test_a_value_that_cannot_work_in_the_recipe_file_is_refused_naming_the_key(section, key, value, message):
    data = yaml.safe_load(QUICKSTART.read_text())
    data[section][key] = value
    with pytest.raises(ConfigError, match=message):
        load_config(data=data)


def test_ranges_hold_inside_nested_sections_given_whole():
    with pytest.raises(ConfigError, match=r"^Optimizer\.lr\.learning_rate: expected a learning rate >= 0, got -1\.0$"):
        load_config(QUICKSTART, ["Optimizer.lr={name: Cosine, learning_rate: -1.0}"])


def _sections(cls=schema.Config):
    """`cls` and every section class nested in it."""
    yield cls
    for tp in typing.get_type_hints(cls).values():
        for member in typing.get_args(tp) or (tp,):
            if dataclasses.is_dataclass(member):
                yield from _sections(member)


def test_every_declared_default_lies_in_its_own_range():
    ranged = 0
    for section in set(_sections()):
        for f in dataclasses.fields(section):
            if RANGE in f.metadata:
                default = f.default_factory() if f.default is dataclasses.MISSING else f.default
                check_range(f.metadata, default, f"{section.__name__}.{f.name}")  # raises if it does not
                ranged += 1
    assert ranged >= 40  # every section's numeric fields declare a range


def test_boundary_values_that_can_work_are_accepted():
    cfg = load_config(QUICKSTART, ["Optimizer.lr.warmup_epoch=0", "Optimizer.lr.eta_min=0", "Optimizer.momentum=0",
                                   "Ray.num_workers=0", "DataLoader.Train.loader.num_workers=0", "Ray.cpus_per_worker=0.5",
                                   "Global.class_num=10", "Optimizer.lr.learning_rate=0.1/8"])
    assert (cfg.Optimizer.lr.warmup_epoch, cfg.Ray.num_workers, cfg.Ray.cpus_per_worker) == (0, 0, 0.5)
    assert cfg.Optimizer.lr.learning_rate == pytest.approx(0.0125)


# ------------------------------------------------------------------------------------------ override syntax


@pytest.mark.parametrize("override,message", [
    ("Global=", r"no value for the section Global, which would reset all its keys to their defaults"),
    ("Optimizer.lr=", r"no value for the section Optimizer\.lr"),
    ("Global.epochs=", r"Global\.epochs: expected an integer, got null \(no value\)"),
    ("Global.device=", r"Global\.device: expected one of \['cpu', 'gpu'\], got null"),
    ("Global.epochs", r"expected Section\.key=value"),
    ("=3", r"empty key"),
    ("Global..epochs=3", r"empty part in the key 'Global\.\.epochs'"),
    ("Bogus.x=1", r"unknown key Bogus; valid keys: Arch, Global"),
    ("Bogus=", r"unknown key Bogus"),
    ("Global.epoch=3", r"unknown key Global\.epoch; did you mean epochs"),
    ("Optimizer.lr.lerning_rate=0.1", r"unknown key Optimizer\.lr\.lerning_rate; did you mean learning_rate"),
    ("Global.epochs.x=1", r"Global\.epochs is a value, not a section"),
    ("Global.image_shape.x=1", r"Global\.image_shape is a list, indexed by item number"),
    ("Global.epochs=three", r"Global\.epochs: expected an integer, got 'three'"),
])
def test_a_malformed_override_is_an_error_naming_the_override_as_given(override, message):
    with pytest.raises(ConfigError, match=rf"^override {re.escape(repr(override))}: {message}"):
        load_config(QUICKSTART, [override])


def test_an_empty_override_is_null_where_null_means_something():
    assert load_config(QUICKSTART, ["Global.class_num="]).Global.class_num is None
    assert load_config(QUICKSTART, ["Metric.Train="]).Metric.Train == []
    with_ema = load_config(QUICKSTART, ["EMA.decay=0.999"])
    assert with_ema.EMA.decay == 0.999
    assert load_config(QUICKSTART, ["EMA.decay=0.999", "EMA="]).EMA is None  # an optional section: turned off


# ------------------------------------------------------------------------------------ cross-field and schedule


def test_arch_and_global_class_counts_that_disagree_are_refused():
    with pytest.raises(ConfigError, match=r"^Arch\.class_num: 10, but Global\.class_num: 100"):
        load_config(QUICKSTART, ["Global.class_num=100"])
    assert load_config(QUICKSTART, ["Global.class_num=10"]).num_classes == 10


def test_a_schedule_that_cannot_be_built_is_refused_at_load():
    with pytest.raises(ConfigError, match=r"Piecewise needs decay_epochs and one more value than boundaries"):
        load_config(QUICKSTART, ["Optimizer.lr.name=Piecewise", "Optimizer.lr.decay_epochs=[10, 20]",
                                 "Optimizer.lr.values=[0.1, 0.01]"])
    with pytest.raises(ConfigError, match=r"Optimizer\.lr\.learning_rate: a single number is expected for Cosine"):
        load_config(QUICKSTART, ["Optimizer.lr.learning_rate=[0.1, 0.2]"])
    with pytest.raises(ConfigError, match=r"Optimizer\.lr\.step_size: required for the Step schedule"):
        load_config(QUICKSTART, ["Optimizer.lr.name=Step"])


def test_distillation_models_own_class_count_is_ranged():
    data = yaml.safe_load(QUICKSTART.read_text())
    data["Arch"] = {"name": "DistillationModel", "class_num": 10, "freeze_params_list": [True, False],
                    "models": [{"Teacher": {"name": "PPLCNet_x0_5", "class_num": -1}},
                               {"Student": {"name": "PPLCNet_x0_25"}}], "infer_model_name": "Student"}
    with pytest.raises(ConfigError, match=r"^Arch\.models\[0\]\.Teacher\.class_num: expected >= 1, got -1$"):
        load_config(data=data)


# ----------------------------------------------------------------------------- class count against the dataset


def test_class_count_must_match_the_prepared_dataset_unless_a_subset_is_allowed():
    cfg = load_config(QUICKSTART)  # Arch.class_num: 10
    check_class_num(cfg, 10)
    with pytest.raises(ConfigError, match=r"^Arch\.class_num: 10 outputs, but the prepared dataset has 12 classes "
                                          r"\(labels 10\.\.11 would have no output\); set Arch\.class_num: 12$"):
        check_class_num(cfg, 12)
    with pytest.raises(ConfigError, match=r"^Arch\.class_num: 10 outputs, but the prepared dataset has 4 classes; "
                                          r"set Arch\.class_num: 4, or Global\.allow_class_subset: true"):
        check_class_num(cfg, 4)
    subset = load_config(QUICKSTART, ["Global.allow_class_subset=true"])
    check_class_num(subset, 4)  # fine-tuning 10 outputs on 4 of the classes, as asked
    with pytest.raises(ConfigError, match=r"12 classes"):
        check_class_num(subset, 12)  # more classes than outputs: never


def test_class_count_check_names_the_key_that_set_it():
    with pytest.raises(ConfigError, match=r"^Global\.class_num: 10 outputs, but the prepared dataset has 3"):
        check_class_num(load_config(QUICKSTART, ["Arch.class_num=", "Global.class_num=10"]), 3)
    with pytest.raises(ConfigError, match=r"^Arch\.class_num \(unset: PaddleClas's 1000\): 1000 outputs, but the "
                                          r"prepared dataset has 10 classes"):
        check_class_num(load_config(QUICKSTART, ["Arch.class_num="]), 10)


# ------------------------------------------------------------------------------------------------ the CLI


def _train_cli(*overrides: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "ppipe", "train", str(QUICKSTART)]
    for override in overrides:
        args += ["-o", override]
    start = time.monotonic()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    return done, time.monotonic() - start


@pytest.mark.parametrize("override,message", [
    ("Optimizer.lr.learning_rate=-0.1", "Optimizer.lr.learning_rate: expected a learning rate >= 0, got -0.1"),
    ("Global=", "no value for the section Global"),
    ("Arch.class_num=-3", "Arch.class_num: expected >= 1, got -3"),
    ("Ray.cpus_per_worker=0", "Ray.cpus_per_worker: expected > 0, got 0.0"),
])
def test_train_cli_refuses_a_bad_override_in_one_line_with_status_2_before_ray_starts(override, message):
    done, seconds = _train_cli(override)
    errors = [line for line in done.stderr.splitlines() if line.startswith("ppipe: error:")]
    assert done.returncode == 2, done.stderr
    assert len(errors) == 1 and errors[0].startswith(f"ppipe: error: override {override!r}: {message}"), done.stderr
    assert "Traceback" not in done.stderr
    assert "ray" not in done.stderr.replace(errors[0], "").lower()  # nothing of Ray started or logged
    assert done.stdout == ""
    assert seconds < 60  # a load-time failure (seconds, on a busy machine), not a worker's (minutes)
