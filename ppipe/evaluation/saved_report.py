"""An evaluation's counts on disk (`<run>/eval/counts.npz`): the summed `EvalAccumulator` with its class names
and the deployment targets' top-1, so the same `EvalReport` is rebuilt later (the model card) without scoring
again. numpy's npz, read without pickle."""

from __future__ import annotations

import io
import os

import numpy as np

from ppipe.report import EvalAccumulator, EvalReport
from ppipe.storage import write_bytes_atomic


def save_counts(counts: EvalAccumulator, report: EvalReport, path: str) -> None:
    """`counts` (`counts.npz`: confusion matrix, calibration bins, ...) with `report`'s class names and target
    top-1, from which `load_report` rebuilds the same report without evaluating again (the model card does)."""
    targets = sorted(report.target_top1)
    buf = io.BytesIO()
    np.savez_compressed(buf, flat=counts.to_flat(), num_bins=counts.num_bins,
                        class_names=np.array(report.class_names, dtype=str), targets=np.array(targets, dtype=str),
                        target_top1=np.array([report.target_top1[t] for t in targets], dtype=np.float64))
    write_bytes_atomic(path, buf.getvalue())


def load_report(path: str) -> EvalReport:
    """The report `save_counts` wrote to `path`."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: evaluate the run first (`ppipe evaluate`)")
    with np.load(path, allow_pickle=False) as saved:
        names = [str(n) for n in saved["class_names"]]
        report = EvalAccumulator.from_flat(saved["flat"], len(names), int(saved["num_bins"])).finalize(names)
        return report.with_target_top1(dict(zip((str(t) for t in saved["targets"]),
                                                (float(v) for v in saved["target_top1"]))))
