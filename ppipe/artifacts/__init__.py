"""Versioned, checksummed artifacts (weights, inference models, configs, metrics) in a local or fsspec store."""

from ppipe.artifacts.store import (
    ArtifactError,
    default_store,
    get_manifest,
    list_artifacts,
    list_versions,
    parse_ref,
    publish,
    pull,
    resolve,
    set_alias,
)

__all__ = [
    "ArtifactError",
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
