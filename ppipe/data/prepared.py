"""An opened prepared dataset (the OUT of `ppipe data prepare`): its manifest, read and validated once, and what
readers ask of it (classes, split sizes, shards, each rank's share and order); and which prepared dataset a run
reads (`resolve_prepared`).

Every reader function of `ppipe.data` accepts a `PreparedDataset` where it accepts a URL: open the dataset once
(`open_prepared`) and pass the object, and the manifest is not read again.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from ppipe import storage
from ppipe.data.manifest import MANIFEST_NAME, DatasetError, load_manifest, split_info
from ppipe.data.sampling import epoch_order, rank_share
from ppipe.errors import ConfigError

if TYPE_CHECKING:
    from ppipe.config import Config

__all__ = ["PreparedDataset", "open_prepared", "resolve_prepared", "verify_prepared"]


@dataclass(frozen=True, eq=False)
class PreparedDataset:
    """A prepared dataset at `url` (local path or fsspec URL) with its validated `manifest`."""

    url: str
    manifest: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        """The class list: label i is classes[i] (ImageNet wnids, or the class-folder names)."""
        return list(self.manifest["classes"])

    @property
    def num_classes(self) -> int:
        return int(self.manifest["num_classes"])

    @property
    def class_descriptions(self) -> list[str]:
        """Human-readable class names (LOC_synset_mapping.txt's), the class list where the source had none."""
        return list(self.manifest.get("class_names") or self.manifest["classes"])

    @property
    def split_names(self) -> list[str]:
        return sorted(self.manifest["splits"])

    def split(self, name: str) -> dict[str, Any]:
        """The manifest entry of split `name` (num_images, shards, ...); an unknown split is a DatasetError."""
        return split_info(self.manifest, name, self.url)

    def num_images(self, split: str) -> int:
        """Number of images in `split`."""
        return int(self.split(split)["num_images"])

    def shards(self, split: str) -> list[dict[str, Any]]:
        """The shard entries of `split` ({"path", "num_rows", "sha256", "size"}), in stored order."""
        return self.split(split)["shards"]

    def shard_url(self, shard: dict[str, Any]) -> str:
        return storage.join(self.url, shard["path"])

    def num_samples(self, split: str, *, rank: int = 0, world_size: int = 1, pad: bool = True) -> int:
        """Number of samples `rank` of `world_size` reads from `split` in any epoch (all of them by default)."""
        return rank_share(self.num_images(split), rank=rank, world_size=world_size, pad=pad)

    def num_batches(self, split: str, batch_size: int, *, rank: int = 0, world_size: int = 1,
                    drop_last: bool = False, pad: bool = True) -> int:
        """Number of batches `iter_batches` yields on `rank` in any epoch."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = self.num_samples(split, rank=rank, world_size=world_size, pad=pad)
        return n // batch_size if drop_last else math.ceil(n / batch_size)

    def epoch_plan(self, split: str, **order: Any) -> tuple[np.ndarray, np.ndarray]:
        """(shard index, row index) of every sample a rank reads in an epoch, in order; `order` takes
        `ppipe.data.sampling.epoch_order`'s keywords (rank, world_size, epoch, shuffle, seed, pad, shuffle_buffer)."""
        return epoch_order([s["num_rows"] for s in self.shards(split)], **order)

    def verify(self) -> None:
        """Check every shard against its sha256 in the manifest; DatasetError on a missing or changed shard.
        Reads every shard in full: meant for checks and tests, not for every training run."""
        for info in self.manifest["splits"].values():
            for shard in info["shards"]:
                try:
                    data = storage.read_bytes(self.shard_url(shard))
                except FileNotFoundError:
                    raise DatasetError(f"prepared dataset {self.url!r}: shard {shard['path']!r} is missing") from None
                if storage.sha256_bytes(data) != shard["sha256"]:
                    raise DatasetError(f"prepared dataset {self.url!r}: shard {shard['path']!r} does not match its "
                                       f"sha256 in {MANIFEST_NAME} (corrupted or overwritten)")

    def __repr__(self) -> str:
        return f"PreparedDataset({self.url!r}, {self.num_classes} classes, splits {self.split_names})"


Prepared = Union[str, "os.PathLike[str]", PreparedDataset]


def open_prepared(prepared: Prepared) -> PreparedDataset:
    """The prepared dataset at `prepared` (local path or fsspec URL), its manifest read and validated; a
    PreparedDataset is returned as it is. A missing or malformed manifest is a DatasetError naming the path."""
    if isinstance(prepared, PreparedDataset):
        return prepared
    url = os.fspath(prepared)
    return PreparedDataset(url, load_manifest(url))


def verify_prepared(prepared: Prepared) -> dict[str, Any]:
    """`PreparedDataset.verify` on `prepared`; returns its manifest."""
    dataset = open_prepared(prepared)
    dataset.verify()
    return dataset.manifest


def resolve_prepared(cfg: "Config", override: str | None = None) -> str:
    """Where the prepared dataset of a run of `cfg` is: `override` (`ppipe train --data`), else
    DataLoader.Train.dataset.path, else Data.prepared. A local path is made absolute (Ray workers run in their own
    working directories). Reads nothing: `open_prepared` the result to check it. No location is a ConfigError."""
    path = override or cfg.DataLoader.Train.dataset.path or cfg.Data.prepared
    if not path:
        dataset = cfg.DataLoader.Train.dataset
        if dataset.name == "ImageNetDataset":
            raise ConfigError(f"DataLoader.Train.dataset: ImageNetDataset (image_root={dataset.image_root}) must be "
                              f"prepared into shards first: run `ppipe data prepare SOURCE OUT` and pass `--data OUT`")
        raise ConfigError("no prepared dataset: pass --data PREPARED, or set DataLoader.Train.dataset.path or "
                          "Data.prepared")
    path = os.fspath(path)
    return path if "://" in path else os.path.abspath(path)
