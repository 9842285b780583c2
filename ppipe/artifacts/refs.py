"""Names inside the artifact store: artifact names, versions, aliases, references (`NAME`, `NAME:VERSION`,
`NAME@ALIAS`) and file names inside an artifact, each checked with an error that names the bad value."""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone

MANIFEST = "manifest.json"
CLAIM = ".publish.json"
LATEST = "latest"
# Names, aliases and every path component: a letter, digit or '_' first (no hidden files, no `..`, no option-like
# '-'), then a small safe
# set, bounded so a tampered manifest cannot make a path that a filesystem rejects half-way through a pull.
MAX_NAME = 128
MAX_PATH = 512
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,%d}$" % (MAX_NAME - 1))
_VERSION_RE = re.compile(r"^v([0-9]{1,9})$")


class ArtifactError(Exception):
    """Any artifact-store failure: bad input, unknown reference, checksum mismatch, ..."""


def check_name(kind: str, value: str) -> str:
    """An artifact name or alias: `NAME_RE` (letters, digits, '.', '_', '+', '-'; not starting with '.' or '-';
    at most `MAX_NAME` characters)."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ArtifactError(f"invalid {kind} {value!r}: use 1-{MAX_NAME} letters, digits, '.', '_', '+' and '-', "
                            "starting with a letter, digit or '_'")
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


def current_user() -> str:
    """Who runs this (recorded in alias histories): the login name, else `$USER`, else "unknown"."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry (containers) and no LOGNAME/USER
        return os.environ.get("USER") or "unknown"


def check_relpath(rel: str) -> str:
    """A file name inside an artifact: relative, '/'-separated, every component a safe name (`NAME_RE`), at most
    `MAX_PATH` characters, not one of the store's own files. Backslashes, absolute paths, drive letters, `.`, `..`
    and empty components are refused, so no manifest can name a file outside the version's folder or DEST."""
    r = rel if isinstance(rel, str) else ""
    parts = r.split("/")
    if not r or len(r) > MAX_PATH or not all(NAME_RE.match(p) for p in parts):
        raise ArtifactError(f"invalid file name inside the artifact: {rel!r} (a relative path like 'a/b.json' of "
                            f"letters, digits, '.', '_', '+', '-' components, at most {MAX_PATH} characters)")
    if r in (MANIFEST, CLAIM):
        raise ArtifactError(f"file name {rel!r} is reserved by the artifact store")
    return r


def parse_ref(ref: str) -> tuple[str, str, str]:
    """``NAME`` -> (name, "alias", "latest"); ``NAME:V`` -> (name, "version", "vN"); ``NAME@A`` -> (name, "alias", A)."""
    if not isinstance(ref, str) or len(ref) > 2 * MAX_NAME + 1:
        raise ArtifactError(f"invalid reference {ref!r}: expected NAME, NAME:vN or NAME@ALIAS")
    ref = ref.strip()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return check_name("artifact name", name), "alias", check_name("alias", alias)
    if ":" in ref:
        name, ver = ref.split(":", 1)
        return check_name("artifact name", name), "version", vname(parse_version(ver))
    return check_name("artifact name", ref), "alias", LATEST
