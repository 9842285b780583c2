"""What a dataset source holds: its classes and, per split, the image files with their labels.

Accepted sources (a local path or any fsspec URL):
  * ImageNet folder layout: `train/<class>/*`, `val/<class>/*` (class folders; files may be nested deeper).
  * `val/` flat (images directly inside) with labels from `LOC_val_solution.csv` (Kaggle; in the source root or
    in `val/`) or a `val_list.txt` (`path label` lines, path relative to the source root or to `val/`).
  * PaddleClas list files: `train_list.txt` / `val_list.txt` in the source root, `relative/path label` lines
    (used for a split that has no class folders).
  Class names come from `LOC_synset_mapping.txt` (first column, file order) when present, else the sorted
  class-folder names (or `0..max_label` for list files).
A local source is listed by `ppipe.data.local_tree` (links followed, loops refused, undecodable names rejected);
it must not overlap the output folder.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import posixpath
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ppipe import storage
from ppipe.data.image_check import IMAGE_EXTENSIONS, is_image_name
from ppipe.data.local_tree import LocalTree, inside, printable
from ppipe.data.manifest import DatasetError

__all__ = ["EXPECTED", "Plan", "SPLITS", "Source", "UNLABELED", "discover"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
MAPPING_FILE = "LOC_synset_mapping.txt"
KAGGLE_VAL_FILE = "LOC_val_solution.csv"
UNLABELED = -1  # the label of an image listed without one (distillation data: the teacher supplies targets)

EXPECTED = ("expected an ImageNet-layout folder (train/<class>/<image>, val/<class>/<image> or val/ flat with "
            "LOC_val_solution.csv or val_list.txt) or PaddleClas list files (train_list.txt, val_list.txt with "
            "'relative/path label' lines)")


@dataclass
class Plan:
    """What preparation will read: the classes and, per split, (path relative to the source root, label)."""
    classes: list[str]
    descriptions: dict[str, str] = field(default_factory=dict)
    splits: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    layout: dict[str, str] = field(default_factory=dict)  # split -> "folders", "flat" or "list"
    rejected: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"} of entries not planned


class Source:
    """A dataset source folder (local path or fsspec URL) and the reads discovery needs.

    `out`, the folder the prepared dataset goes to, is refused when it overlaps a local source, and a local
    source's links into it are refused (`ppipe.data.local_tree`).
    """

    def __init__(self, source: str, out: str | None = None) -> None:
        self.url = str(source)
        try:
            self.fs, self.root = storage.filesystem(self.url)
        except Exception as exc:  # noqa: BLE001
            raise DatasetError(f"dataset source {self.url!r} cannot be opened: {exc}; {EXPECTED}") from exc
        out_path = self._check_apart(str(out)) if out is not None else None
        self.tree = LocalTree(self.root, out_path) if storage.is_local(self.fs) else None

    def _check_apart(self, out: str) -> str | None:
        """OUT's local path when OUT and this source are both local and apart; DatasetError when they overlap
        (after resolving links): a re-run would read OUT as part of the source, or shards would land in it."""
        out_fs, out_root = storage.filesystem(out)
        if not (storage.is_local(self.fs) and storage.is_local(out_fs)):
            return None
        src_real, out_real = os.path.realpath(self.root), os.path.realpath(out_root)
        if src_real == out_real:
            raise DatasetError(f"OUT {out!r} is the dataset source {self.url!r} itself; write the prepared "
                               f"dataset to a folder outside the source")
        if inside(out_real, src_real):
            raise DatasetError(f"OUT {out!r} is inside the dataset source {self.url!r}: a later run would read it "
                               f"as part of the source; choose an OUT outside the source")
        if inside(src_real, out_real):
            raise DatasetError(f"dataset source {self.url!r} is inside OUT {out!r}: shards would be written "
                               f"among its files; choose an OUT outside the source")
        return out_root

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts) if parts else self.root

    def isdir(self, *parts: str) -> bool:
        return self.fs.isdir(self.path(*parts))

    def isfile(self, *parts: str) -> bool:
        return self.fs.isfile(self.path(*parts))

    def read_text(self, *parts: str) -> str:
        try:
            with self.fs.open(self.path(*parts), "rb") as f:
                return f.read().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{printable(self.path(*parts))} is not UTF-8 text (byte {exc.start}); "
                               f"expected a UTF-8 text file") from None
        except OSError as exc:
            raise DatasetError(f"cannot read {printable(self.path(*parts))}: {exc.strerror or exc}") from None

    def entries(self, *parts: str) -> list[tuple[str, bool]]:
        """(name, is_dir) of a folder's children, sorted; an unreadable folder is a DatasetError."""
        if self.tree is not None:
            return self.tree.entries(posixpath.join(*parts) if parts else "")
        with self._listing(*parts):
            listing = self.fs.ls(self.path(*parts), detail=True)
        out = []
        for e in listing:
            name = posixpath.basename(str(e["name"]).rstrip("/"))
            out.append((name, e.get("type") == "directory"))
        return sorted(out)

    def files_under(self, *parts: str) -> list[str]:
        """Image files below a folder (recursive), as paths relative to the source root."""
        if self.tree is not None:
            return self.tree.files_under(posixpath.join(*parts) if parts else "")
        rels = []
        with self._listing(*parts):
            for dirpath, _dirs, files in self.fs.walk(self.path(*parts), on_error="raise"):
                rels += [self.rel(posixpath.join(str(dirpath), name)) for name in files if is_image_name(name)]
        return sorted(rels)

    @contextmanager
    def _listing(self, *parts: str):
        """Listing a folder of a remote source: a refused read is a DatasetError naming the folder."""
        try:
            yield
        except PermissionError as exc:
            raise DatasetError(f"cannot read dataset source folder {self.path(*parts)!r}: permission denied "
                               f"({exc})") from None

    @property
    def rejected(self) -> list[dict[str, str]]:
        """Entries listing came across and left out ({"path", "reason"}): broken links, undecodable names."""
        found = self.tree.rejected if self.tree is not None else {}
        return [{"path": path, "reason": reason} for path, reason in sorted(found.items())]

    def file_stats(self, rels: list[str]) -> dict[str, tuple[Any, str]]:
        """(size, modification stamp) of the files `rels`, links followed (missing ones are left out)."""
        if self.tree is not None:
            return {rel: st for rel in rels if (st := self.tree.stat(rel)) is not None}
        stats = {}
        for full, info in self.fs.find(self.root, detail=True).items():
            stamp = info.get("ETag") or info.get("mtime") or info.get("LastModified") or info.get("created")
            stats[self.rel(full)] = (info.get("size"), str(stamp))
        return stats

    def rel(self, full: str) -> str:
        root, full = self.root.rstrip("/"), str(full)
        return full[len(root) + 1:] if full.startswith(root + "/") else full


def discover(src: Source) -> Plan:
    """The classes and labelled files of `src`; DatasetError (saying why) when it is not a usable source."""
    if not src.fs.exists(src.root):
        raise DatasetError(f"dataset source {src.url!r} does not exist; {EXPECTED}")
    if not src.isdir():
        raise DatasetError(f"dataset source {src.url!r} is not a folder; {EXPECTED}")
    mapping = _read_mapping(src)
    kinds = _split_kinds(src)
    classes, descriptions = _classes(src, mapping, kinds)
    index = {c: i for i, c in enumerate(classes)}
    plan = Plan(classes=classes, descriptions=descriptions)
    for split, (kind, arg) in kinds.items():
        if kind == "folders":
            plan.splits[split] = [(rel, index[cls]) for cls in arg for rel in src.files_under(split, cls)]
        elif kind == "flat":
            plan.splits[split] = _flat_split(src, split, classes, index)
        else:
            plan.splits[split] = _read_list_file(src, arg, split)
        plan.layout[split] = kind
    if not plan.classes:
        plan.classes = _classes_from_labels(src, plan)
    plan.rejected = src.rejected
    _check_labels(src, plan)
    return plan


def _split_kinds(src: Source) -> dict[str, tuple[str, Any]]:
    """What each split looks like: ("folders", class folder names), ("flat", None) or ("list", list file name);
    a split that is absent is left out."""
    kinds: dict[str, tuple[str, Any]] = {}
    notes = []
    for split in SPLITS:
        if src.isdir(split):
            entries = src.entries(split)
            class_dirs = [n for n, d in entries if d and not n.startswith(".")]
            flat = [n for n, d in entries if not d and is_image_name(n)]
            if class_dirs:
                kinds[split] = ("folders", class_dirs)
                if flat:
                    log.warning("%s/%s: %d image files next to class folders are ignored", src.url, split, len(flat))
                continue
            if flat:
                kinds[split] = ("flat", None)
                continue
            notes.append(f"{split}/ has no class folders and no images")
        if src.isfile(f"{split}_list.txt"):
            kinds[split] = ("list", f"{split}_list.txt")
    if not kinds:
        why = "; ".join(notes) if notes else "it has no train/ or val/ folder and no train_list.txt/val_list.txt"
        raise DatasetError(f"dataset source {src.url!r} has no classes or images ({why}); {EXPECTED}")
    return kinds


def _classes(src: Source, mapping, kinds) -> tuple[list[str], dict[str, str]]:
    """(class names, descriptions): the mapping file's when there is one, else the sorted class-folder names."""
    folder_names = sorted({c for k, v in kinds.values() if k == "folders" for c in v})
    if mapping is None:
        return folder_names, {}
    classes, descriptions = mapping
    unknown = [c for c in folder_names if c not in set(classes)]
    if unknown:
        raise DatasetError(f"dataset source {src.url!r}: class folders {unknown[:5]} are not in {MAPPING_FILE}")
    return classes, descriptions


def _classes_from_labels(src: Source, plan: Plan) -> list[str]:
    """`0..max label` for a source whose list files are its only labels."""
    labels = [lab for items in plan.splits.values() for _, lab in items if lab >= 0]
    if not labels:
        raise DatasetError(f"dataset source {src.url!r} has no classes (no class folders under train/ or val/, "
                           f"no {MAPPING_FILE}); {EXPECTED}")
    return [str(i) for i in range(max(labels) + 1)]


def _check_labels(src: Source, plan: Plan) -> None:
    n = len(plan.classes)
    for split, items in plan.splits.items():
        bad = [(rel, lab) for rel, lab in items if not (0 <= lab < n or lab == UNLABELED)]
        if bad:
            raise DatasetError(f"dataset source {src.url!r}, split {split}: label {bad[0][1]} of {bad[0][0]!r} is "
                               f"outside 0..{n - 1} ({n} classes)")
    if not any(plan.splits.values()):
        raise DatasetError(f"dataset source {src.url!r} contains no image files "
                           f"({', '.join(sorted(IMAGE_EXTENSIONS))}); {EXPECTED}")


def _read_mapping(src: Source) -> tuple[list[str], dict[str, str]] | None:
    if not src.isfile(MAPPING_FILE):
        return None
    classes, desc = [], {}
    for line in src.read_text(MAPPING_FILE).splitlines():
        parts = line.strip().split(maxsplit=1)
        if not parts:
            continue
        classes.append(parts[0])
        desc[parts[0]] = parts[1] if len(parts) > 1 else parts[0]
    if len(set(classes)) != len(classes):
        raise DatasetError(f"{src.url}/{MAPPING_FILE} lists a class more than once")
    if not classes:
        raise DatasetError(f"{src.url}/{MAPPING_FILE} is empty; expected '<folder> <name>' lines")
    return classes, desc


def _read_list_file(src: Source, name: str, split: str) -> list[tuple[str, int]]:
    """PaddleClas list file lines `relative/path label` -> [(path relative to the source root, label)].

    A line holding only a path lists an unlabeled image (label `UNLABELED`), as SSLD's extra data is.
    """
    items = []
    prefix: str | None = None  # paths are relative to the source root or to the split folder: decided once
    for n, line in enumerate(src.read_text(name).splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        rel, lab = _list_line(src, name, split, n, line)
        rel = rel[2:] if rel.startswith("./") else rel
        if prefix is None:
            prefix = split if (not src.isfile(rel) and src.isfile(split, rel)) else ""
        items.append((posixpath.join(prefix, rel) if prefix else rel, lab))
    return items


def _list_line(src: Source, name: str, split: str, n: int, line: str) -> tuple[str, int]:
    """(path, label) of line `n` of list file `name`: `path label`, or a path alone (unlabeled)."""
    parts = line.rsplit(maxsplit=1)
    if len(parts) == 1:
        return parts[0], UNLABELED
    rel, label = parts
    try:
        lab = int(label)
    except ValueError:
        if src.isfile(line) or src.isfile(split, line):  # a path with a space, no label
            return line, UNLABELED
        raise DatasetError(f"{src.url}/{name} line {n}: expected 'relative/path label' with an integer label "
                           f"(or just a path, for an unlabeled image), got {line!r}") from None
    if lab < 0 and lab != UNLABELED:
        raise DatasetError(f"{src.url}/{name} line {n}: label {lab} is negative")
    return rel, lab


def _flat_split(src: Source, split: str, classes: list[str], index: dict[str, int]) -> list[tuple[str, int]]:
    """The images directly in `split/`, labelled by a Kaggle solution file or a list file."""
    files = [r for r in src.files_under(split) if posixpath.dirname(r) == split]
    by_stem = {posixpath.splitext(posixpath.basename(r))[0]: r for r in files}
    for where in (KAGGLE_VAL_FILE, posixpath.join(split, KAGGLE_VAL_FILE)):
        if src.isfile(where):
            labels = _kaggle_labels(src, where, classes, index)
            unlabeled = [r for s, r in by_stem.items() if s not in labels]
            if unlabeled:
                raise DatasetError(f"{src.url}/{split}: {len(unlabeled)} images have no label in {where}, "
                                   f"e.g. {unlabeled[0]!r}")
            return [(r, labels[s]) for s, r in sorted(by_stem.items(), key=lambda kv: kv[1])]
    for where in (f"{split}_list.txt", posixpath.join(split, f"{split}_list.txt")):
        if src.isfile(where):
            return _read_list_file(src, where, split)
    raise DatasetError(f"dataset source {src.url!r}: {split}/ holds images directly but there is no "
                       f"{KAGGLE_VAL_FILE} or {split}_list.txt to label them; put them in {split}/<class>/ folders "
                       f"or add one of these files")


def _kaggle_labels(src: Source, where: str, classes: list[str], index: dict[str, int]) -> dict[str, int]:
    """Image id -> label from Kaggle's `ImageId,PredictionString` solution file (first wnid of each row)."""
    if not classes:
        raise DatasetError(f"{src.url}/{where} names classes by id but there are no class folders and no "
                           f"{MAPPING_FILE}")
    labels = {}
    for n, row in enumerate(csv.reader(io.StringIO(src.read_text(where))), 1):
        if n == 1 and row and row[0].strip() == "ImageId":
            continue
        if len(row) < 2 or not row[1].split():
            raise DatasetError(f"{src.url}/{where} line {n}: expected 'ImageId,wnid ...', got {row!r}")
        wnid = row[1].split()[0]
        if wnid not in index:
            raise DatasetError(f"{src.url}/{where} line {n}: class {wnid!r} is unknown")
        labels[row[0].strip()] = index[wnid]
    return labels
