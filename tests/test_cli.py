"""The `ppipe` command line as users and scripts call it (CONTRACT): JSON on stdout, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ppipe(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ppipe", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_models_list_json_has_the_contract_fields():
    out = ppipe("models", "list", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    names = [r["name"] for r in rows]
    assert "MobileNetV3_large_x1_0" in names and "PPLCNet_x2_5" in names
    assert names == sorted(names)
    assert set(rows[0]) >= {"name", "family", "params_m", "input_size"}


def test_models_list_filters_by_pattern():
    rows = json.loads(ppipe("models", "list", "PPLCNet*", "--json").stdout)
    assert len(rows) == 8 and all(r["family"] == "PPLCNet" for r in rows)


def test_data_demo_and_prepare_json_summary(tmp_path):
    assert ppipe("data", "demo", str(tmp_path / "digits"), "--image-size", "16").returncode == 0
    out = ppipe("data", "prepare", str(tmp_path / "digits"), str(tmp_path / "prepared"), "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["num_classes"] == 10 and summary["classes"] == [str(i) for i in range(10)]
    assert summary["splits"] == {"train": {"num_images": 1437}, "val": {"num_images": 360}}
    assert summary["rejected"] == []


def test_missing_data_source_exits_nonzero_naming_it(tmp_path):
    out = ppipe("data", "prepare", str(tmp_path / "no-such-dir"), str(tmp_path / "out"))
    assert out.returncode == 2
    assert "no-such-dir" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_bad_config_key_exits_nonzero_naming_the_key(tmp_path):
    out = ppipe("train", str(ROOT / "configs" / "quickstart.yaml"), "-o", "Optimizer.lr.warmup_epochs=1")
    assert out.returncode == 2
    assert "Optimizer.lr.warmup_epochs" in out.stderr and "warmup_epoch" in out.stderr


def test_pull_of_unknown_artifact_exits_nonzero(tmp_path):
    out = ppipe("artifacts", "pull", "nothing@latest", str(tmp_path / "dest"), "--store", str(tmp_path / "store"))
    assert out.returncode == 2 and "nothing" in out.stderr
    assert not (tmp_path / "dest").exists()


def test_artifacts_list_of_empty_store_is_an_empty_json_list(tmp_path):
    out = ppipe("artifacts", "list", "--json", "--store", str(tmp_path / "store"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
