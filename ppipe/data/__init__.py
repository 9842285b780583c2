"""Data stage: the digits demo source, preparation into checked Parquet shards, PaddleClas-style transforms and
the per-rank input pipeline that training and evaluation read."""

from ppipe.data import augment as _augment  # noqa: F401  (registers AutoAugment, RandAugment, ...)
from ppipe.data.batch_ops import create_batch_operators
from ppipe.data.demo import write_digits_demo
from ppipe.data.manifest import DatasetError, load_manifest, verify_prepared
from ppipe.data.prepare import prepare_dataset
from ppipe.data.reader import (class_names, iter_batches, iter_samples, num_batches, num_samples,
                               split_size)
from ppipe.data.transforms import OPERATORS, create_operators, register_operator

__all__ = [
    "DatasetError",
    "OPERATORS",
    "class_names",
    "create_batch_operators",
    "create_operators",
    "iter_batches",
    "iter_samples",
    "load_manifest",
    "num_batches",
    "num_samples",
    "prepare_dataset",
    "register_operator",
    "split_size",
    "verify_prepared",
    "write_digits_demo",
]
