"""Evaluation reports and model cards.

`EvalAccumulator` gathers counts batch by batch (summable across Ray workers) and `finalize`s them into an
`EvalReport`; `write_eval_outputs` lays the report out as DVC metrics and plots, `log_to_wandb` sends it to a wandb
run, and `build_model_card`/`write_model_card` publish it with an artifact as Markdown and JSON.
"""

from ppipe.report.accumulator import EvalAccumulator, evaluate_logits
from ppipe.report.eval_report import EvalReport
from ppipe.report.model_card import ModelCard, build_model_card, write_model_card
from ppipe.report.outputs import write_eval_outputs
from ppipe.report.reference import PublishedResult, published_results
from ppipe.report.wandb_log import log_to_wandb

__all__ = ["EvalAccumulator", "EvalReport", "ModelCard", "PublishedResult", "build_model_card", "evaluate_logits",
           "log_to_wandb", "published_results", "write_eval_outputs", "write_model_card"]
