"""Data stage: the digits demo source, preparation into checked Parquet shards, the opened prepared dataset
(`open_prepared`, and `resolve_prepared` for which one a run reads), PaddleClas-style transform and batch operators
and the per-rank input pipeline that training and evaluation read."""

from ppipe.data import augment as _augment  # noqa: F401  (registers AutoAugment, RandAugment, ...)
from ppipe.data.batch_ops import create_batch_operators
from ppipe.data.demo import write_digits_demo
from ppipe.data.manifest import DatasetError, load_manifest
from ppipe.data.operators import (BATCH_OPERATORS, OPERATORS, OperatorParamError, UnknownOperatorError,
                                  register_batch_operator, register_operator)
from ppipe.data.prepare import prepare_dataset
from ppipe.data.prepared import PreparedDataset, open_prepared, resolve_prepared, verify_prepared
from ppipe.data.reader import (class_names, iter_batches, iter_samples, num_batches, num_samples,
                               split_size)
from ppipe.data.transforms import create_operators

__all__ = [
    "BATCH_OPERATORS",
    "DatasetError",
    "OPERATORS",
    "OperatorParamError",
    "PreparedDataset",
    "UnknownOperatorError",
    "class_names",
    "create_batch_operators",
    "create_operators",
    "iter_batches",
    "iter_samples",
    "load_manifest",
    "num_batches",
    "num_samples",
    "open_prepared",
    "prepare_dataset",
    "register_batch_operator",
    "register_operator",
    "resolve_prepared",
    "split_size",
    "verify_prepared",
    "write_digits_demo",
]
