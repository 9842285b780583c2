"""Hyperparameter search over ppipe recipes with Ray Tune (`ppipe tune CONFIG SEARCH.yaml`).

`space` parses and validates search files (no Ray import); `runner` runs the search, each trial a ppipe training
run (`trial`, reporting through `channel`), and writes the summary and the best trial's recipe.
"""

from ppipe.tune.space import Distribution, SearchSpace, load_search_space


def run_tune(cfg, space, *, data=None, resume=False):
    """See `ppipe.tune.runner.run_tune` (imports Ray Tune, so only when called)."""
    from ppipe.tune.runner import run_tune as run

    return run(cfg, space, data=data, resume=resume)


__all__ = ["Distribution", "SearchSpace", "load_search_space", "run_tune"]
