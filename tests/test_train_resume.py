"""`ppipe train --resume`: which run it continues, and a clear error when there is none to continue."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ppipe.config import ConfigError
from ppipe.train.trainer import _run_name
from tests.test_train import QUICKSTART, _cfg

REPO = Path(__file__).resolve().parents[1]


def _stored_run(storage: Path, name: str, *started: str) -> None:
    """A run folder as `ppipe train` leaves it: one `attempts/<UTC time>/` folder per call that started workers."""
    (storage / name).mkdir(parents=True)
    for stamp in started:
        (storage / name / "attempts" / stamp).mkdir(parents=True)


def test_bare_resume_takes_the_run_of_this_recipe_started_last_not_the_last_name_in_alphabetical_order(tmp_path):
    storage = tmp_path / "runs"
    # created first, resumed last
    _stored_run(storage, "quickstart-20260101-000000-000000", "20260101-000000-000001", "20261201-120000-000000")
    _stored_run(storage, "quickstart-20260601-000000-000000", "20260601-000000-000001")
    # another recipe whose run_name merely starts with this one's
    _stored_run(storage, "quickstart-big-20261205-000000-000000", "20261205-000000-000001")
    assert _run_name(_cfg(tmp_path), str(storage), True) == "quickstart-20260101-000000-000000"


def test_bare_resume_counts_a_run_whose_workers_never_started_from_the_time_in_its_name(tmp_path):
    storage = tmp_path / "runs"
    _stored_run(storage, "quickstart-20260101-000000-000000", "20260101-000000-000001")
    _stored_run(storage, "quickstart-20260301-000000-000000")
    assert _run_name(_cfg(tmp_path), str(storage), True) == "quickstart-20260301-000000-000000"


def test_resume_of_a_run_that_does_not_exist_is_an_error_listing_the_runs_that_do_newest_first(tmp_path):
    storage = tmp_path / "runs"
    _stored_run(storage, "quickstart-20260101-000000-000000", "20261201-000000-000000")
    _stored_run(storage, "quickstart-20260601-000000-000000", "20260601-000000-000001")
    with pytest.raises(ConfigError, match=r"--resume quickstart-typo: no such run under .*runs; the runs there, "
                                          r"newest first: quickstart-20260101-000000-000000, "
                                          r"quickstart-20260601-000000-000000$"):
        _run_name(_cfg(tmp_path), str(storage), "quickstart-typo")
    with pytest.raises(ConfigError, match="holds no runs yet"):
        _run_name(_cfg(tmp_path), str(tmp_path / "empty"), "quickstart-typo")
    assert _run_name(_cfg(tmp_path), str(storage), "quickstart-20260601-000000-000000") == \
        "quickstart-20260601-000000-000000"


def test_cli_resume_of_an_unknown_run_exits_2_in_one_line_before_training_and_overwrites_nothing(tmp_path,
                                                                                               digits_prepared):
    out = tmp_path / "out"
    _stored_run(out / "ray", "quickstart-20260101-000000-000000", "20260101-000000-000001")
    model = out / "quickstart" / "model.pdparams"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"the earlier run's weights")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "ppipe", "train", str(QUICKSTART), "--data", digits_prepared,
                          "-o", f"Global.output_dir={out}", "--resume", "quickstart-nosuch"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr[-2000:]
    line = run.stderr.strip().splitlines()[-1]  # after any library warning
    assert line.startswith("ppipe: error: --resume quickstart-nosuch: no such run") and \
        line.endswith("quickstart-20260101-000000-000000")
    assert model.read_bytes() == b"the earlier run's weights"
    assert sorted(p.name for p in (out / "ray").iterdir()) == ["quickstart-20260101-000000-000000"]
