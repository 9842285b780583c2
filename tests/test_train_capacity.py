"""The capacity check before training: a run the cluster can never hold fails at once, naming the settings."""

import pytest

from ppipe.config import ConfigError
from ppipe.config.schema import RaySection
from ppipe.train.capacity import check_capacity, has_autoscaler

CPU_ONLY = {"CPU": 2.0, "memory": 4e9}


def test_gpu_workers_on_a_cpu_only_cluster_fail_naming_the_settings_and_the_cluster():
    with pytest.raises(ConfigError) as e:
        check_capacity(RaySection(num_workers=8, use_gpu=True), CPU_ONLY, has_autoscaler=False)
    message = str(e.value)
    for named in ("Ray.num_workers: 8", "Ray.use_gpu: true", "Ray.cpus_per_worker", "8 GPU", "2 CPU, 0 GPU"):
        assert named in message


def test_too_many_cpu_workers_fail_without_an_autoscaler():
    with pytest.raises(ConfigError, match=r"need 6 CPU.*has 2 CPU"):
        check_capacity(RaySection(num_workers=3, cpus_per_worker=2), CPU_ONLY, has_autoscaler=False)


def test_with_an_autoscaler_the_run_waits_and_says_so():
    notice = check_capacity(RaySection(num_workers=8, use_gpu=True), CPU_ONLY, has_autoscaler=True)
    assert "waiting for the autoscaler" in notice and "Ray.num_workers: 8" in notice


@pytest.mark.parametrize("section, use_gpu", [
    (RaySection(num_workers=2, cpus_per_worker=1), None),
    (RaySection(num_workers=0, use_gpu=True), None),            # in-process mode asks Ray for nothing
    (RaySection(num_workers=8, use_gpu=None), False),           # Global.device: gpu resolved to CPU workers...
])
def test_runs_that_fit_pass(section, use_gpu):
    resources = CPU_ONLY if use_gpu is None else {"CPU": 16.0}
    assert check_capacity(section, resources, has_autoscaler=False, use_gpu=use_gpu) is None


def test_against_a_real_local_ray_instance(local_ray):
    import ray

    resources = ray.cluster_resources()
    assert has_autoscaler() is False  # ray.init(address="local") starts no autoscaler
    assert check_capacity(RaySection(num_workers=2, cpus_per_worker=1), resources, has_autoscaler()) is None
    with pytest.raises(ConfigError, match=r"Ray.num_workers: 8.*the Ray cluster has 2 CPU, 0 GPU"):
        check_capacity(RaySection(num_workers=8, use_gpu=True), resources, has_autoscaler())
