"""The `ppipe evaluate` stage and the model card of a run.

`evaluate(cfg, weights=, model_ref=, out=)` scores a run's model (or a `.pdparams` file, or a published
artifact) on the val split, spread over the Ray workers (`runner`), scores the run's deployment targets on the
same split (`targets`), and writes eval.json and the DVC metrics/plots of `ppipe.report`; `write_run_model_card`
turns an evaluated run folder into its model card (`card`).
"""

from ppipe.evaluation.card import write_run_model_card
from ppipe.evaluation.runner import run_sharded, sum_counts
from ppipe.evaluation.saved_report import load_report
from ppipe.evaluation.stage import evaluate

__all__ = ["evaluate", "load_report", "run_sharded", "sum_counts", "write_run_model_card"]
