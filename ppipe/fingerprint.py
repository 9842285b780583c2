"""What a published model was made from, as one hash, and where that hash is kept: a zoo sweep skips a model whose
recipe, code and data are unchanged since its last published version.

fingerprint = sha256 of (the resolved recipe YAML, the code's git revision, the prepared data's content sha256).
The data version is the one DVC knows: the sha256 of the prepared dataset's `manifest.json` and, when `dvc.lock`
tracks that folder as an output, DVC's md5 of it. A re-preparation of unchanged data rewrites the manifest with a
new `created` time and a new source `fingerprint` (file times), so the fingerprint takes the manifest's content
sha256 instead: the manifest without those two fields (classes, splits with every shard's sha256, rejections).

`ppipe.stages.publish` takes no extra metadata yet, so the record is published beside the model as its own
versioned artifact `<name>.lineage` (metadata: the model version it describes, the fingerprint, the parents).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ppipe import storage
from ppipe.artifacts import ArtifactError, publish, resolve

LINEAGE_SUFFIX = ".lineage"
# Set in images built from a commit (infra/images): a worker's checkout may carry no .git folder.
GIT_COMMIT_ENV = "PPIPE_GIT_COMMIT"
# Manifest fields that change when unchanged data is prepared again.
_VOLATILE_MANIFEST_KEYS = ("created", "fingerprint")


def git_output(args: list[str], cwd: str) -> str | None:
    """`git ARGS` run in `cwd`: its stdout, or None where git fails (no checkout, no git)."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def code_revision(repo: str) -> str:
    """The git commit of the code in `repo`, with `+dirty.<sha256 of the diff>` when ppipe/, flows/ or configs/ have
    local edits (two runs of the same edits agree; any edit changes it); `$PPIPE_GIT_COMMIT` where there is no git."""
    commit = git_output(["rev-parse", "HEAD"], repo)
    diff = git_output(["diff", "HEAD", "--", "ppipe", "flows", "configs"], repo) if commit else None
    if commit is None or diff is None:
        commit = os.environ.get(GIT_COMMIT_ENV, "")
        if not commit:
            raise RuntimeError(f"{repo} is no git checkout and ${GIT_COMMIT_ENV} is not set: the code version of "
                               f"a published model would be unknown")
        return commit
    commit = commit.strip()
    return f"{commit}+dirty.{hashlib.sha256(diff.encode()).hexdigest()[:16]}" if diff else commit


def dvc_hash(path: str, repo: str = ".") -> str | None:
    """The md5 that `repo`/dvc.lock records for the stage output at `path` (relative paths are from `repo`, as in
    the lock file), or None when no stage there produces it."""
    lock = Path(repo) / "dvc.lock"
    if "://" in path or not lock.is_file():
        return None
    target = os.path.realpath(os.path.join(repo, path))
    for stage in ((yaml.safe_load(lock.read_text()) or {}).get("stages") or {}).values():
        for out in (stage or {}).get("outs") or []:
            if isinstance(out, dict) and os.path.realpath(os.path.join(repo, str(out.get("path")))) == target:
                return out.get("md5")
    return None


def data_version(prepared: str, repo: str) -> dict[str, Any]:
    """{"prepared", "manifest_sha256", "content_sha256", "dvc_md5"} of a prepared dataset (`dvc_md5` None when
    `repo`'s DVC does not track it)."""
    from ppipe.data.manifest import manifest_url

    raw = storage.read_bytes(manifest_url(prepared))
    content = {k: v for k, v in json.loads(raw).items() if k not in _VOLATILE_MANIFEST_KEYS}
    return {"prepared": prepared, "manifest_sha256": storage.sha256_bytes(raw),
            "content_sha256": storage.sha256_bytes(json.dumps(content, sort_keys=True).encode()),
            "dvc_md5": dvc_hash(prepared, repo)}


def fingerprint(config_yaml: str, code: str, data_sha256: str) -> str:
    doc = json.dumps({"config_sha256": hashlib.sha256(config_yaml.encode()).hexdigest(), "code": code,
                      "data_sha256": data_sha256}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def lineage_name(model: str) -> str:
    return model + LINEAGE_SUFFIX


def record_lineage(store: str | None, published: dict, lineage: dict[str, Any]) -> dict:
    """Publish `lineage` (fingerprint, code, data, parents, ...) for the model version `published` (its
    manifest) as the next version of `<name>.lineage`; returns that manifest."""
    doc = {"model": f"{published['name']}:{published['version']}", **lineage}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lineage.json")
        Path(path).write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))
        return publish(store, lineage_name(published["name"]), {"lineage.json": path},
                       metadata={"model_version": published["version"], **lineage})


def latest_lineage(store: str | None, model: str) -> dict | None:
    """The lineage metadata of `model`'s newest published version, or None when the model or its lineage is
    missing, or the newest lineage describes an older version (a publish without lineage came after it)."""
    try:
        newest = resolve(store, model)
        lineage = resolve(store, lineage_name(model))
    except ArtifactError:
        return None
    meta = lineage.get("metadata") or {}
    return meta if meta.get("model_version") == newest["version"] else None
