"""Where ppipe reads and writes: local paths and any fsspec URL (s3://, file://, memory://).

Every writer in ppipe goes through `write_bytes_atomic`, so a reader never sees a half-written file:
on a local filesystem the bytes go to a temporary sibling that is renamed into place; on an object store a
single PUT (or a completed multipart upload) is already all-or-nothing. Multi-file outputs (datasets,
published artifacts) make themselves visible by writing their manifest last.

S3-compatible stores (MinIO, moto) are reached by setting `AWS_ENDPOINT_URL`, which botocore honours.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem behind `url` and the path inside it (a plain path is a local one)."""
    fs, path = fsspec.core.url_to_fs(str(url))
    return fs, path.rstrip("/") or path


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def join(url: str, *parts: str) -> str:
    """Join path parts onto a local path or URL with forward slashes."""
    url = str(url)
    if "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://" + posixpath.join(rest, *parts)
    return os.path.join(url, *parts)


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.exists(path)


def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    with fs.open(path, "rb") as f:
        return f.read()


def read_json_mapping(path: str) -> dict:
    """The JSON object in the local file `path`; {} when the file is absent or holds something else."""
    import json

    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        doc = json.load(f)
    return doc if isinstance(doc, dict) else {}


def write_bytes_atomic(url: str, data: bytes) -> None:
    """Write `data` so that `url` either keeps its old content or holds all of the new one."""
    fs, path = filesystem(url)
    parent = posixpath.dirname(path) if not is_local(fs) else os.path.dirname(path)
    if is_local(fs):
        os.makedirs(parent or ".", exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    else:
        fs.pipe_file(path, data)


def upload_file_atomic(local_path: str, url: str) -> None:
    """Copy a local file to `url` with the same all-or-nothing guarantee as `write_bytes_atomic`."""
    fs, path = filesystem(url)
    if is_local(fs):
        with open(local_path, "rb") as f:
            write_bytes_atomic(url, f.read())
    else:
        fs.put_file(local_path, path)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def storage_options() -> dict[str, Any]:
    """Options for libraries that take explicit storage options (pyarrow, dvc) rather than the environment."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}


class staged_directory:
    """Build a local directory next to `dest` and swap it into place only if the block succeeds.

    `with staged_directory(dest) as tmp:` fill `tmp`; on success `dest` is replaced by it (an old `dest`
    is moved aside first and removed after), on error `tmp` is removed and `dest` is untouched, so no
    reader ever sees a half-built directory.
    """

    def __init__(self, dest: str, purpose: str = "staged"):
        self.dest = os.path.abspath(os.fspath(dest))
        self.purpose = purpose

    def __enter__(self) -> str:
        import tempfile

        parent = os.path.dirname(self.dest)
        os.makedirs(parent, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(self.dest)}.{self.purpose}-", dir=parent)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        import shutil

        try:
            if exc_type is None:
                old = None
                if os.path.lexists(self.dest):
                    old = f"{self.tmp}.old"
                    os.replace(self.dest, old)
                os.replace(self.tmp, self.dest)
                if old is not None:
                    if os.path.isdir(old) and not os.path.islink(old):
                        shutil.rmtree(old, ignore_errors=True)
                    else:
                        os.remove(old)
        finally:
            if os.path.exists(self.tmp):
                shutil.rmtree(self.tmp, ignore_errors=True)
