"""Ray Train's `DataParallelTrainer` with only the helper actors a ppipe run uses.

Ray Train starts, beside the controller and the workers, helper actors for features ppipe does not use. Each is
a Python process whose main thread wakes 100 times a second (Ray's signal check) plus its own polling: on a
small machine, wake-ups that preempt the training threads (measured on 2 cores: the quickstart's math threads
wait for a CPU 3-4% of the time under ppipe, 0.5% in a bare loop). Left out:

* the dataset manager (every run): it hands out Ray Data shards; ppipe's workers read the prepared shards
  themselves and pass no Ray Datasets;
* on the embedded instance only (no `Ray.address`):
  - the placement-group cleaner: an actor that asks Ray's State API every second whether the controller still
    lives. The embedded instance runs no dashboard, so has no State API: the cleaner could never act, and logged
    "Failed to query Ray Train Controller actor state" every second. The placement group goes with the
    instance when ppipe exits;
  - the autoscaling coordinator: the controller registers the workers' resources with it for a cluster
    autoscaler; the embedded instance is one fixed node with no autoscaler.

Clusters keep Ray Train's own cleaner and autoscaler requests. Stopping on SIGINT/SIGTERM is ppipe's
(`ppipe.train.interrupt`): Ray Train's SIGINT handler is not installed, and an interrupted run's controller is
asked to abort (it stops the workers and records the run as aborted), then killed if it cannot answer in time (it
is blocked while it waits for workers to be placed); its worker actors die with it.
This module imports Ray: import it lazily.
"""

from __future__ import annotations

import ray
from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback
from ray.train.v2._internal.execution.scaling_policy import FixedScalingPolicy
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer


# How long an interrupted run's controller gets to stop its workers (Ray Train gives each worker 5 s to run its
# shutdown hooks) before it is killed.
_ABORT_WAIT_S = 6.0


class PpipeTrainer(DataParallelTrainer):
    """For a Ray cluster: Ray Train's trainer without the dataset manager, stopped by ppipe on a signal."""

    _left_out: tuple[type, ...] = (DatasetsCallback,)
    _controller = None

    def _create_default_callbacks(self):
        return [cb for cb in super()._create_default_callbacks() if not isinstance(cb, self._left_out)]

    def _register_sigint_handler(self, controller):
        # Instead of Ray Train's handler: the controller is stopped below, when the signal has interrupted `fit`.
        self._controller = controller

    def _initialize_and_run_controller(self, **controller_init_kwargs):
        try:
            return super()._initialize_and_run_controller(**controller_init_kwargs)
        except KeyboardInterrupt:
            self._stop_controller()
            raise

    def _stop_controller(self) -> None:
        controller, self._controller = self._controller, None
        if controller is None:
            return
        try:
            # The controller ends itself after aborting (RayActorError); a busy one does not answer (timeout).
            ray.get(controller.abort.remote(), timeout=_ABORT_WAIT_S)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            pass
        ray.kill(controller, no_restart=True)


class FixedNodeScalingPolicy(FixedScalingPolicy):
    """Ray Train's fixed-size policy without resource requests to an autoscaler (there is none to ask)."""

    def after_controller_start(self, train_run_context) -> None:
        pass

    def _maybe_send_resource_request(self) -> None:
        pass

    def _send_resource_request(self) -> None:
        pass


class EmbeddedInstanceTrainer(PpipeTrainer):
    """For ppipe's own local Ray instance: also without the placement-group cleaner and autoscaler requests."""

    _left_out = (DatasetsCallback, PlacementGroupCleanerCallback)

    def _initialize_and_run_controller(self, **controller_init_kwargs):
        if type(controller_init_kwargs.get("scaling_policy")) is FixedScalingPolicy:
            controller_init_kwargs["scaling_policy"] = FixedNodeScalingPolicy(self.scaling_config)
        return super()._initialize_and_run_controller(**controller_init_kwargs)
