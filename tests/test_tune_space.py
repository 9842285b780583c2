"""Search files: the distribution syntax, the Tune settings, and keys checked against the recipe schema."""

from pathlib import Path

import pytest

from ppipe.config import ConfigError, load_config
from ppipe.tune import Distribution, load_search_space
from ppipe.tune.space import parse_distribution

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"


def _search(tmp_path, text):
    path = tmp_path / "search.yaml"
    path.write_text(text)
    return load_search_space(path, load_config(QUICKSTART))


def test_every_distribution_kind_parses_into_its_arguments():
    assert parse_distribution("k", "loguniform(1e-3, 1e-1)") == Distribution("loguniform", (1e-3, 1e-1))
    assert parse_distribution("k", "uniform(0.8, 0.95)") == Distribution("uniform", (0.8, 0.95))
    assert parse_distribution("k", "choice([16, 32])") == Distribution("choice", (16, 32))
    assert parse_distribution("k", "grid(['a', 'b'])") == Distribution("grid", ("a", "b"))


@pytest.mark.parametrize("text, expected", [
    ("loguniform(0, 1)", "loguniform(low, high) with 0 < low < high"),
    ("uniform(2, 1)", "uniform(low, high) with low < high"),
    ("uniform(a, 1)", "uniform(low, high) with low < high"),
    ("choice([])", "choice([v1, v2, ...]) with at least one value"),
    ("grid(3)", "grid([v1, v2, ...]) with at least one value"),
    ("normal(0, 1)", "expected one of loguniform"),
    (0.1, "expected one of loguniform"),
])
def test_a_syntax_error_names_the_key_and_what_was_expected(text, expected):
    with pytest.raises(ConfigError) as e:
        parse_distribution("search.yaml: Optimizer.lr.learning_rate", text)
    assert "Optimizer.lr.learning_rate" in str(e.value) and expected in str(e.value)


def test_search_file_keys_and_tune_settings_load(tmp_path):
    space = _search(tmp_path, "Optimizer.lr.learning_rate: loguniform(1e-3, 1e-1)\n"
                              "DataLoader.Train.sampler.batch_size: choice([16, 32])\n"
                              "Tune: {num_samples: 6, scheduler: pbt, metric: val_loss, mode: min}\n")
    assert set(space.distributions) == {"Optimizer.lr.learning_rate", "DataLoader.Train.sampler.batch_size"}
    assert (space.settings.num_samples, space.settings.scheduler, space.settings.mode) == (6, "pbt", "min")
    assert space.settings.grace_period == 1  # the recipe's Tune section fills what the file leaves out


@pytest.mark.parametrize("text, named", [
    ("Optimizer.lr.learnin_rate: uniform(0.1, 0.2)\n", "Optimizer.lr.learnin_rate"),
    ("DataLoader.Train.sampler.batch_size: choice([16, 'big'])\n", "DataLoader.Train.sampler.batch_size"),
    ("Global.output_dir: choice(['a', 'b'])\n", "set by the tuner"),
    ("Tune: {scheduler: hyperband}\nOptimizer.momentum: uniform(0.8, 0.9)\n", "Tune.scheduler"),
    ("Tune: {num_samples: 0}\nOptimizer.momentum: uniform(0.8, 0.9)\n", "Tune.num_samples"),
    ("Tune: {num_samples: 2}\n", "no key to search"),
    ("Tune: {scheduler: pbt}\nOptimizer.momentum: grid([0.8, 0.9])\n", "pbt perturbs"),
])
def test_keys_are_checked_against_the_recipe_before_any_trial(tmp_path, text, named):
    with pytest.raises(ConfigError) as e:
        _search(tmp_path, text)
    assert named in str(e.value)
