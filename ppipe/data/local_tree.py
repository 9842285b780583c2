"""Listing a local dataset source folder for discovery (`ppipe.data.sources`), the way users build them.

* Symbolic links to class folders, nested folders and image files are followed: ImageNet layouts are often
  assembled from links into other disks.
* A link that leads back onto a folder being listed (a loop, `up -> ..`), or that points inside the output
  folder, is refused with a DatasetError naming it: the first would never end, the second would read the
  prepared dataset back as images.
* A broken link, and a folder or image file whose name is not valid UTF-8, cannot be read or stored (shard
  paths and the manifest are UTF-8): each is reported in `rejected` with its path, undecodable bytes written
  as `\\xNN`, and the rest of the source is prepared.
* A folder that cannot be listed (permissions, I/O error) is a DatasetError naming it.
"""

from __future__ import annotations

import os
import posixpath

from ppipe.data.image_check import is_image_name
from ppipe.data.manifest import DatasetError

__all__ = ["LocalTree", "NOT_UTF8", "inside", "printable"]

NOT_UTF8 = "name is not valid UTF-8 (rename it to include it)"


def printable(path: str) -> str:
    """`path` with the bytes that are not valid UTF-8 (os.fsdecode's surrogate escapes) written as `\\xNN`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def inside(path: str, folder: str) -> bool:
    """Whether resolved path `path` is `folder` or lies below it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unreadable(folder: str, exc: OSError) -> DatasetError:
    why = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
    return DatasetError(f"cannot read dataset source folder {printable(folder)!r}: {why}")


class LocalTree:
    """The local folder `root`, listed with paths relative to it ('/'-separated); never reads into `out`.

    Entries that are skipped but must not go unnoticed accumulate in `rejected` ({printable path: reason}).
    """

    def __init__(self, root: str, out: str | None = None) -> None:
        self.root = root
        self.out = os.path.realpath(out) if out else None
        self.rejected: dict[str, str] = {}

    def full(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def entries(self, rel: str) -> list[tuple[str, bool]]:
        """(name, is_dir) of folder `rel`'s children, links followed, sorted by name."""
        return [(name, is_dir) for name, is_dir, _ in self._children(rel)]

    def files_under(self, rel: str) -> list[str]:
        """Image files below folder `rel` (recursive, links followed), relative to the root, sorted."""
        chain: dict[tuple[int, int], str] = {}
        parts = rel.split("/") if rel else []
        for depth in range(len(parts)):  # the folders above `rel` count for loops too (`train/x -> ..`)
            self._enter("/".join(parts[:depth]), chain)
        found: list[str] = []
        self._walk(rel, chain, found)
        return sorted(found)

    def stat(self, rel: str) -> tuple[int, str] | None:
        """(size, modification stamp) of file `rel`, its link followed; None when it cannot be read."""
        try:
            st = os.stat(self.full(rel))
        except OSError:
            return None
        return st.st_size, str(st.st_mtime)  # the stamp fsspec reports, so fingerprints stay as they were

    def _walk(self, rel: str, chain: dict[tuple[int, int], str], found: list[str]) -> None:
        self._enter(rel, chain)
        for name, is_dir, path in self._children(rel):
            if is_dir:
                self._walk(path, chain, found)
            elif is_image_name(name):
                found.append(path)
        del chain[next(reversed(chain))]

    def _enter(self, rel: str, chain: dict[tuple[int, int], str]) -> None:
        """Add folder `rel` to the chain of folders being listed; one already on it means a link loop."""
        try:
            st = os.stat(self.full(rel))
        except OSError as exc:
            raise _unreadable(self.full(rel), exc) from None
        key = (st.st_dev, st.st_ino)
        if key in chain:
            raise DatasetError(f"dataset source folder {printable(self.full(rel))!r} is a symbolic link loop: it "
                               f"leads back to {printable(self.full(chain[key]))!r}; remove the link")
        chain[key] = rel

    def _children(self, rel: str) -> list[tuple[str, bool, str]]:
        """(name, is_dir, path relative to the root) of the usable children of folder `rel`, sorted by name."""
        kids = []
        for entry in sorted(self._scan(rel), key=lambda e: e.name):
            path = posixpath.join(rel, entry.name) if rel else entry.name
            is_dir = self._kind(entry, path)
            if is_dir is None:
                continue
            if not _is_utf8(entry.name):
                if is_dir or is_image_name(entry.name):  # other files are ignored whatever their name
                    self.rejected[printable(path)] = ("folder " if is_dir else "file ") + NOT_UTF8
                continue
            kids.append((entry.name, is_dir, path))
        return kids

    def _scan(self, rel: str) -> list[os.DirEntry]:
        full = self.full(rel)
        try:
            with os.scandir(full) as it:
                return list(it)
        except OSError as exc:
            raise _unreadable(full, exc) from None

    def _kind(self, entry: os.DirEntry, path: str) -> bool | None:
        """Whether `entry` is a folder (links followed); None, recorded in `rejected`, for a broken link.
        A link loop or a link into `out` is a DatasetError."""
        if not entry.is_symlink():
            return entry.is_dir(follow_symlinks=False)
        try:
            target = os.path.realpath(entry.path, strict=True)
        except FileNotFoundError:
            self.rejected[printable(path)] = f"broken symbolic link (to {printable(os.readlink(entry.path))!r})"
            return None
        except OSError as exc:  # ELOOP: a link that resolves to itself
            raise DatasetError(f"dataset source entry {printable(entry.path)!r} is a symbolic link loop "
                               f"({exc.strerror}); remove the link") from None
        if self.out and inside(target, self.out):
            raise DatasetError(f"dataset source entry {printable(entry.path)!r} is a symbolic link into OUT "
                               f"{printable(self.out)!r} (to {printable(target)!r}): a source must not contain "
                               f"the prepared dataset; remove the link")
        return os.path.isdir(target)
