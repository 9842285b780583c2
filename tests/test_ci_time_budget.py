"""`--time-budget` (tests/conftest.py), which bounds CI's slow step: a test that would start after the budget is
skipped with the reason, not run and not failed."""

from __future__ import annotations

import os
import subprocess
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))
CHEAP = [f"{TESTS}/test_config.py::test_quickstart_recipe_loads_into_typed_sections",
         f"{TESTS}/test_config.py::test_paddleclas_number_expressions_are_evaluated"]


def _pytest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *CHEAP, "-q", "-rs", "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, cwd=os.path.dirname(TESTS), timeout=300)


def test_tests_starting_after_the_budget_are_skipped_with_the_reason():
    out = _pytest("--time-budget", "0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 skipped" in out.stdout
    assert "--time-budget of 0 s was spent before this test started" in out.stdout


def test_tests_run_inside_the_budget_and_without_one():
    for args in (("--time-budget", "3600"), ()):
        out = _pytest(*args)
        assert out.returncode == 0 and "2 passed" in out.stdout, out.stdout + out.stderr
