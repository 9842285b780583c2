"""Prefect's engine applies the flows' retry policy: an infrastructure failure is retried (with the policy's
backoff list), a wrong input fails after one attempt with its message in the failed state."""

from __future__ import annotations

import pytest
from prefect import flow, task
from prefect.testing.utilities import prefect_test_harness

from flows.retry import INFRA_RETRIES, RETRY_DELAYS_S
from ppipe.errors import ConfigError


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness():
        yield


def _flaky(failures: list[BaseException]):
    calls = []

    # the shared policy, with the backoff shortened for the test (its length sets the number of retries)
    @task(**{**INFRA_RETRIES, "retry_delay_seconds": [0] * len(RETRY_DELAYS_S)})
    def step() -> int:
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return len(calls)

    @flow
    def run() -> int:
        return step()

    return run, calls


def test_storage_timeouts_and_lost_workers_are_retried_until_the_attempt_succeeds(harness):
    from ray.exceptions import WorkerCrashedError

    run, calls = _flaky([TimeoutError("store timed out"), WorkerCrashedError()])
    assert run() == 3 and len(calls) == 3


def test_a_bad_config_fails_once_with_its_message(harness):
    run, calls = _flaky([ConfigError("Arch.name: unknown model 'ResNet5'")])
    state = run(return_state=True)
    assert state.is_failed() and len(calls) == 1
    with pytest.raises(ConfigError, match="unknown model 'ResNet5'"):
        state.result()


def test_retries_stop_after_the_policy_is_spent(harness):
    run, calls = _flaky([ConnectionError("reset")] * 10)
    assert run(return_state=True).is_failed() and len(calls) == 1 + len(RETRY_DELAYS_S)
