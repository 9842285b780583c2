"""Shared test fixtures: a real S3 API (moto's server mode over HTTP) and isolated service homes; the
`--time-budget` option that bounds CI's slow step."""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest

PADDLECLAS_CONFIGS = Path(__file__).resolve().parent / "data" / "paddleclas_configs"
_SESSION_START = time.monotonic()


def pytest_addoption(parser):
    parser.addoption("--time-budget", type=float, default=None, metavar="SECONDS",
                     help="skip, with that reason, every test that would start after SECONDS of this session "
                          "(CI's slow step: it must end inside CI's 90 minutes whatever the machine's speed)")


def pytest_runtest_setup(item):
    budget = item.config.getoption("--time-budget")
    if budget is not None and time.monotonic() - _SESSION_START > budget:
        pytest.skip(f"the session's --time-budget of {budget:.0f} s was spent before this test started; "
                    "it runs in full with `pytest -m slow`")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on loopback, with the AWS environment pointing every client (s3fs, pyarrow, dvc) at it."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                              "AWS_DEFAULT_REGION")}
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket on the moto server; yields its s3:// URL."""
    import boto3
    import s3fs

    name = f"ppipe-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    s3fs.S3FileSystem.clear_instance_cache()
    yield f"s3://{name}"
    s3fs.S3FileSystem.clear_instance_cache()


def _prepared_digits(tmp_path_factory, size: int, shard_size: int) -> str:
    from ppipe.data import prepare_dataset, write_digits_demo

    root = tmp_path_factory.mktemp(f"digits{size}")
    write_digits_demo(str(root / "source"), image_size=size)
    prepare_dataset(str(root / "source"), str(root / "prepared"), shard_size=shard_size, progress=False)
    return str(root / "prepared")


@pytest.fixture(scope="session")
def digits_prepared(tmp_path_factory):
    """The embedded digits dataset at 16x16, prepared into shards once per test session."""
    return _prepared_digits(tmp_path_factory, 16, 200)


@pytest.fixture(scope="session")
def digits32(tmp_path_factory):
    """The digits at the quickstart's 32 px, for tests whose models must really learn in a few epochs (at 16 px
    PP-LCNet x0.25 barely does)."""
    return _prepared_digits(tmp_path_factory, 32, 400)


@pytest.fixture(scope="session")
def paddleclas_recipe():
    """The path of one of PaddleClas's own recipes, given relative to its ppcls/configs/ImageNet/ (for example
    "ResNet/ResNet50.yaml"), as copied unchanged under tests/data/paddleclas_configs."""
    def path(relative: str) -> Path:
        found = PADDLECLAS_CONFIGS / relative
        if not found.is_file():
            raise FileNotFoundError(f"no PaddleClas recipe {relative!r} under {PADDLECLAS_CONFIGS}")
        return found

    return path


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray instance for the module (Train V2 needs exactly one per host)."""
    import ray

    ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _isolated_tracking(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
