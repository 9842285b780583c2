"""Versioned, checksummed artifacts (weights, inference models, configs, metrics) in a local or fsspec store:
`ArtifactStore(url)`, and one function per operation for scripts that hold only the store's URL."""

from ppipe.artifacts.refs import ArtifactError, parse_ref
from ppipe.artifacts.store import (
    ArtifactStore,
    default_store,
    get_manifest,
    list_artifacts,
    list_versions,
    publish,
    pull,
    resolve,
    set_alias,
)

__all__ = [
    "ArtifactError",
    "ArtifactStore",
    "default_store",
    "get_manifest",
    "list_artifacts",
    "list_versions",
    "parse_ref",
    "publish",
    "pull",
    "resolve",
    "set_alias",
]
