"""A Ray Train backend that sets up Paddle's collective communication (`paddle.distributed`) on Ray workers.

Ray Train ships backends for Torch, TensorFlow, JAX and others, not Paddle. Paddle's collective runtime is
configured entirely through `PADDLE_*` environment variables (what `paddle.distributed.launch` sets), so
the backend's job is to pick one endpoint per worker, a rendezvous (TCPStore) address on rank 0, and export
them before the training function calls `paddle.distributed.init_parallel_env()`. gloo carries CPU
collectives; nccl GPU ones. Each restart of the worker group (after a failure) gets fresh ports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import ray
from ray.train._internal.utils import get_address_and_port
from ray.train.backend import Backend, BackendConfig

_STALE = ("MASTER_ADDR", "MASTER_PORT")  # torch-style variables would point the TCPStore elsewhere


@dataclass
class PaddleBackendConfig(BackendConfig):
    """`backend`: "gloo" (CPU) or "nccl" (GPU); None picks by whether workers have GPUs."""

    backend: str | None = None

    @property
    def backend_cls(self):
        return PaddleBackend


def _export_env(env: dict[str, str]) -> None:
    for key in _STALE:
        os.environ.pop(key, None)
    os.environ.update(env)


def collective_env(world_rank: int, endpoints: list[str], master: str, backend: str) -> dict[str, str]:
    """The `PADDLE_*` variables one worker needs (what `paddle.distributed.launch` would set)."""
    env = {
        "PADDLE_TRAINER_ID": str(world_rank),
        "PADDLE_TRAINERS_NUM": str(len(endpoints)),
        "PADDLE_TRAINER_ENDPOINTS": ",".join(endpoints),
        "PADDLE_CURRENT_ENDPOINT": endpoints[world_rank],
        "PADDLE_MASTER": master,
        "PADDLE_DISTRI_BACKEND": backend,
        "PADDLE_RANK_IN_NODE": str(world_rank),
    }
    if backend == "nccl":
        # Ray narrows CUDA_VISIBLE_DEVICES to this worker's GPU, which Paddle then sees as device 0.
        env["FLAGS_selected_gpus"] = "0"
    return env


class PaddleBackend(Backend):
    def on_start(self, worker_group, backend_config: PaddleBackendConfig):
        backend = backend_config.backend
        if backend is None:
            backend = "nccl" if worker_group.get_resources_per_worker().get("GPU", 0) > 0 else "gloo"
        n = len(worker_group)
        addresses = ray.get([worker_group.execute_single_async(i, get_address_and_port) for i in range(n)])
        endpoints = [f"{addr}:{port}" for addr, port in addresses]
        master_addr, master_port = worker_group.execute_single(0, get_address_and_port)
        master = f"{master_addr}:{master_port}"
        ray.get([worker_group.execute_single_async(i, _export_env, collective_env(i, endpoints, master, backend))
                 for i in range(n)])


def init_collective() -> int:
    """Join the collective group described by the backend's environment; returns the world size.

    With one worker Paddle's `init_parallel_env` is a no-op and collectives raise, so callers guard on the
    returned size (see `all_reduce_sum`).
    """
    import paddle.distributed as dist

    world = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_parallel_env()
    return world


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum a few numbers over all workers (one collective call); identity with one worker."""
    import paddle
    import paddle.distributed as dist

    if int(os.environ.get("PADDLE_TRAINERS_NUM", "1")) <= 1:
        return list(values)
    t = paddle.to_tensor([float(v) for v in values], dtype="float64")
    dist.all_reduce(t)
    return t.numpy().tolist()


def barrier() -> None:
    """Wait for every worker; no-op with one worker."""
    import paddle.distributed as dist

    if int(os.environ.get("PADDLE_TRAINERS_NUM", "1")) > 1:
        dist.barrier()


def average_buffers(model) -> None:
    """Average BatchNorm running statistics (and other float buffers) over workers, in place.

    Data-parallel training syncs gradients but not buffers, so each rank's BatchNorm statistics drift
    apart; evaluating or checkpointing one rank's copy would then describe a model nobody evaluated.
    Averaging them at epoch end (as timm's `distribute_bn` does) makes every rank hold the same model.
    """
    import paddle
    import paddle.distributed as dist

    world = int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))
    if world <= 1:
        return
    # Paddle keeps BatchNorm's _mean/_variance as non-trainable parameters, not buffers.
    stats = [p for p in model.parameters() if p.stop_gradient] + [b for b in model.buffers() if b is not None]
    for buf in stats:
        if buf.dtype in (paddle.float32, paddle.float64, paddle.float16, paddle.bfloat16):
            dist.all_reduce(buf)
            buf.set_value(buf / world)
