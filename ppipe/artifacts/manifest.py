"""A version's ``manifest.json``, read as untrusted input: parsed and checked before anything uses it.

A manifest is what makes a version visible, and `pull` writes and reads files under the names it lists, so a
tampered or damaged one must fail alone and loudly: its own `name` and `version` must be the folder it sits in
(a manifest cannot point `pull` at another artifact's files, or outside the store), every file name passes
`check_relpath` (nothing outside DEST), every entry has a sha256 and a size. Anything else is a
`CorruptManifest` naming the file; `list` skips such a version with a warning, `resolve` of that version raises.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ppipe.artifacts.refs import ArtifactError, check_relpath, vname

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_MANIFEST_BYTES = 64 << 20  # a manifest lists files and a config: megabytes at most; larger is not one


class CorruptManifest(ArtifactError):
    """A version's manifest.json is unreadable, not JSON, or does not describe the folder it sits in."""


def parse_manifest(data: bytes, where: str, name: str, n: int) -> dict[str, Any]:
    """The manifest in `data` (read from `where`, the manifest of version `n` of `name`), checked."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise CorruptManifest(f"{where}: {len(data)} bytes is too large for a manifest")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CorruptManifest(f"{where}: not a JSON manifest ({e}); the version is unreadable") from None
    if not isinstance(doc, dict):
        raise CorruptManifest(f"{where}: the manifest is a {type(doc).__name__}, not a JSON object")
    if doc.get("name") != name or doc.get("version") != vname(n):
        raise CorruptManifest(f"{where}: names {doc.get('name')!r} {doc.get('version')!r}, but lies in "
                              f"{name}/{vname(n)}; refusing a manifest that points elsewhere")
    files = doc.get("files")
    if not isinstance(files, dict) or not files:
        raise CorruptManifest(f"{where}: 'files' must be a non-empty object of file name -> {{sha256, size}}")
    for rel, info in files.items():
        try:
            check_relpath(rel)
        except ArtifactError as e:
            raise CorruptManifest(f"{where}: {e}") from None
        if not (isinstance(info, dict) and isinstance(info.get("sha256"), str) and _SHA256.match(info["sha256"])
                and type(info.get("size")) is int and info["size"] >= 0):
            raise CorruptManifest(f"{where}: file {rel!r} needs a hex 'sha256' and an integer 'size', got {info!r}")
    for key, kind in (("metrics", dict), ("targets", list), ("metadata", dict), ("lineage", dict)):
        if key in doc and not isinstance(doc[key], kind):
            raise CorruptManifest(f"{where}: {key!r} must be a JSON {kind.__name__}")
    return doc
