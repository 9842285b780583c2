"""The infrastructure manifests are valid before anyone applies them: the work pools' base job templates
against Prefect's own job-configuration schemas (`prefect.workers`), the KubeRay RayCluster against the subset
of KubeRay's CRD written down in infra/ray/raycluster.schema.json; and each validator rejects a broken copy."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from prefect.utilities.templating import apply_values
from prefect.workers.base import BaseJobConfiguration
from prefect.workers.process import ProcessJobConfiguration

INFRA = Path(__file__).resolve().parents[1] / "infra"
POOLS = {"process": INFRA / "prefect" / "process-pool.json", "kubernetes": INFRA / "prefect" / "kubernetes-pool.json"}
PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")

# batch/v1 Job, the fields a Prefect Kubernetes worker needs to start a flow run's pod
JOB_MANIFEST = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "batch/v1"}, "kind": {"const": "Job"},
        "spec": {"type": "object", "required": ["template"], "properties": {
            "backoffLimit": {"type": "integer", "minimum": 0},
            "template": {"type": "object", "required": ["spec"], "properties": {"spec": {
                "type": "object", "required": ["containers"],
                "properties": {"restartPolicy": {"enum": ["Never", "OnFailure"]},
                               "containers": {"type": "array", "minItems": 1,
                                              "items": {"type": "object", "required": ["name", "image"]}}}}}}}}}}


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _rendered(template: dict) -> dict:
    """The job configuration a worker builds from the template with every variable at its default."""
    props = template["variables"]["properties"]
    # a variable without a default stays unset: the worker leaves its key out (Prefect's own rendering)
    return apply_values(template["job_configuration"], {k: v["default"] for k, v in props.items() if "default" in v})


def _job_schema(kind: str) -> dict:
    """Prefect's own schema of the worker's job configuration (the Kubernetes worker's when its package is
    installed, else the fields every worker shares)."""
    if kind == "process":
        return ProcessJobConfiguration.model_json_schema()
    try:
        from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration
    except ImportError:
        return BaseJobConfiguration.model_json_schema()
    return KubernetesWorkerJobConfiguration.model_json_schema()


def _check_pool(kind: str, template: dict) -> None:
    variables = template["variables"]
    jsonschema.Draft202012Validator.check_schema(variables)
    for name, prop in variables["properties"].items():
        if "default" in prop:
            jsonschema.validate(prop["default"], prop)
    used = set(PLACEHOLDER.findall(json.dumps(template["job_configuration"])))
    unknown = used - set(variables["properties"])
    assert not unknown, f"{kind} pool: placeholders without a variable: {sorted(unknown)}"
    rendered = _rendered(template)
    jsonschema.validate(rendered, _job_schema(kind))
    if kind == "kubernetes":
        jsonschema.validate(rendered["job_manifest"], JOB_MANIFEST)


@pytest.mark.parametrize("kind", sorted(POOLS))
def test_work_pool_templates_match_prefects_job_configuration(kind):
    _check_pool(kind, _load(POOLS[kind]))


@pytest.mark.parametrize("kind, breaks", [
    ("process", lambda t: t["variables"]["properties"]["stream_output"].update(default="yes")),
    ("process", lambda t: t["job_configuration"].update(working_dir="{{ workdir }}")),
    ("kubernetes", lambda t: t["job_configuration"]["job_manifest"].update(kind="Deployment")),
    ("kubernetes", lambda t: t["variables"]["properties"]["stream_output"].update(type="yes-or-no")),
])
def test_a_broken_work_pool_template_is_rejected(kind, breaks):
    template = copy.deepcopy(_load(POOLS[kind]))
    breaks(template)
    with pytest.raises((jsonschema.ValidationError, jsonschema.SchemaError, AssertionError)):
        _check_pool(kind, template)


def test_process_template_is_prefects_default_with_ppipe_defaults():
    from prefect.workers.process import ProcessWorker

    ours, default = _load(POOLS["process"]), ProcessWorker.get_default_base_job_template()
    assert ours["job_configuration"] == default["job_configuration"]
    assert set(ours["variables"]["properties"]) == set(default["variables"]["properties"])
    assert _rendered(ours)["working_dir"] == "/opt/ppipe"


def _raycluster() -> tuple[dict, dict]:
    return (yaml.safe_load((INFRA / "ray" / "raycluster.yaml").read_text()),
            _load(INFRA / "ray" / "raycluster.schema.json"))


def test_raycluster_matches_kuberays_crd_subset():
    manifest, schema = _raycluster()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(manifest, schema)
    assert manifest["spec"]["rayVersion"].startswith("2.60")  # the Ray the images install (pyproject.toml)


@pytest.mark.parametrize("breaks", [
    lambda m: m["spec"].pop("headGroupSpec"),
    lambda m: m["spec"]["workerGroupSpecs"][0].update(replicas="2"),
    lambda m: m["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]["limits"].update(
        memory="64 GB"),
    lambda m: m["spec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0}),
    lambda m: m.update(apiVersion="ray.io/v1alpha1"),
])
def test_a_broken_raycluster_is_rejected(breaks):
    manifest, schema = _raycluster()
    breaks(manifest)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(manifest, schema)
