"""Versioned, checksummed artifacts (weights, inference models, configs, metrics) in a local or fsspec store:
`ArtifactStore(url)` (publish, list, show, pull, promote, diff, gc), and one function per basic operation for
scripts that hold only the store's URL. docs/registry.md describes the store for its users."""

from ppipe.artifacts.manifest import CorruptManifest
from ppipe.artifacts.promote import MetricGate, parse_gate
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
    "CorruptManifest",
    "MetricGate",
    "default_store",
    "get_manifest",
    "list_artifacts",
    "list_versions",
    "parse_gate",
    "parse_ref",
    "publish",
    "pull",
    "resolve",
    "set_alias",
]
