"""Names inside the artifact store: artifact names, versions, aliases, references (`NAME`, `NAME:VERSION`,
`NAME@ALIAS`) and file names inside an artifact, each checked with an error that names the bad value."""

from __future__ import annotations

import re
from datetime import datetime, timezone

MANIFEST = "manifest.json"
CLAIM = ".publish.json"
LATEST = "latest"
NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_VERSION_RE = re.compile(r"^v([0-9]+)$")


class ArtifactError(Exception):
    """Any artifact-store failure: bad input, unknown reference, checksum mismatch, ..."""


def check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value) or value in (".", ".."):
        raise ArtifactError(f"invalid {kind} {value!r}: use only letters, digits, '.', '_' and '-'")
    return value


def parse_version(v: str | int) -> int:
    s = str(v).strip()
    m = _VERSION_RE.match(s) or re.match(r"^([0-9]+)$", s)
    if not m or int(m.group(1)) < 1:
        raise ArtifactError(f"invalid version {v!r}: expected 'v<N>' or '<N>' with N >= 1")
    return int(m.group(1))


def version_number(folder: str) -> int | None:
    """N for a `v<N>` folder name, else None."""
    m = _VERSION_RE.match(folder)
    return int(m.group(1)) if m else None


def vname(n: int) -> str:
    return f"v{n}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_relpath(rel: str) -> str:
    """A file name inside an artifact: relative, no `..`, not one of the store's own files."""
    r = str(rel).replace("\\", "/")
    parts = r.split("/")
    if (not r or r.startswith("/") or any(p in ("", ".", "..") for p in parts) or ":" in parts[0]):
        raise ArtifactError(f"invalid file name inside the artifact: {rel!r} (use a relative path like 'a/b.json')")
    if r == MANIFEST or r == CLAIM:
        raise ArtifactError(f"file name {rel!r} is reserved by the artifact store")
    return r


def parse_ref(ref: str) -> tuple[str, str, str | None]:
    """``NAME`` -> (name, "alias", "latest"); ``NAME:V`` -> (name, "version", "vN"); ``NAME@A`` -> (name, "alias", A)."""
    ref = str(ref).strip()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return check_name("artifact name", name), "alias", check_name("alias", alias)
    if ":" in ref:
        name, ver = ref.split(":", 1)
        return check_name("artifact name", name), "version", vname(parse_version(ver))
    return check_name("artifact name", ref), "alias", LATEST
