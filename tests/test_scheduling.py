"""The embedded Ray instance's CPU policies (ppipe.train.scheduling): Ray's processes at SCHED_BATCH, the
training threads at SCHED_OTHER."""

import os
import subprocess
import sys
import threading

import pytest

from ppipe.train.scheduling import background_policy, foreground_training_thread, policy_name

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policies")

_CHILD_POLICY = [sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"]


def _in_thread(fn):
    """Run fn in a fresh thread (policies are per thread: the test's own thread is left as it was)."""
    out = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            out["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_processes_started_in_the_block_inherit_sched_batch_and_the_thread_gets_its_policy_back():
    def run():
        with background_policy() as applied:
            inside = policy_name()
            child = int(subprocess.check_output(_CHILD_POLICY, text=True))
        return applied, inside, child, policy_name()

    applied, inside, child, after = _in_thread(run)
    assert applied and inside == "SCHED_BATCH" and child == os.SCHED_BATCH
    assert after == "SCHED_OTHER"
    assert int(subprocess.check_output(_CHILD_POLICY, text=True)) == os.SCHED_OTHER  # outside the block


def test_a_policy_someone_chose_is_left_alone():
    def run():
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # unprivileged: no way back for this thread
        with background_policy() as applied:
            inside = policy_name()
        return applied, inside, foreground_training_thread()

    assert _in_thread(run) == (False, "SCHED_IDLE", "SCHED_IDLE")


def test_a_training_thread_that_inherited_sched_batch_goes_back_to_sched_other_and_so_do_its_threads():
    def run():
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # as a worker of the embedded instance
        policy = foreground_training_thread()
        return policy, _in_thread(policy_name)  # a math thread started afterwards

    assert _in_thread(run) == ("SCHED_OTHER", "SCHED_OTHER")
    assert _in_thread(foreground_training_thread) == "SCHED_OTHER"  # already there: unchanged
