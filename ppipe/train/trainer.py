"""The `ppipe train` stage: run `train_loop` on Ray Train workers and collect what the run produced.

Where it runs is configuration (`Ray` section): no address starts a local Ray instance sized for the
requested workers; an address joins a cluster. Run storage (`Ray.storage_path`) is a local path or an
`s3://` URI; each run gets a fresh name (`<run_name>-<UTC time>`) unless `resume` names an existing one,
in which case it continues from that run's latest checkpoint (`ppipe.train.runs`: a name that is no run
there is an error listing the runs that are).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass, replace
from typing import Any

from ppipe.config import Config, config_to_yaml
from ppipe.storage import write_bytes_atomic
from ppipe.train.run_dir import RunDir, RunStorage
from ppipe.train.runs import fresh_run_name, run_to_resume, utc_stamp

log = logging.getLogger("ppipe.train")


@dataclass
class TrainResult:
    model: str
    epochs_completed: int
    top1: float | None
    checkpoint: str
    restarts: int
    train_img_per_s: float
    run_name: str
    run_dir: str
    history: list[dict[str, Any]]
    # "float32", or "float16 AMP O1"/"O2": an AMP recipe on CPU workers trains in float32 (ppipe.train.amp)
    precision: str = "float32"

    def summary(self) -> dict[str, Any]:
        """The CONTRACT's `ppipe train --json` document (plus run_name / run_dir)."""
        d = asdict(self)
        d.pop("history")
        return d


def _storage_path(cfg: Config) -> str:
    path = cfg.Ray.storage_path or os.path.join(cfg.Global.output_dir, "ray")
    return path if "://" in path else os.path.abspath(path)


# Ray Train reads it in its controller; "0" leaves the preemption watcher actor out (`init_ray`).
_PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"
# How often Ray Train's controller polls the workers (default 2 s). Each poll takes at most one training report
# off each worker, so it also caps how often a run can report: quickstart epochs (~1.2 s), reported each, fell
# behind, and with synchronous reports every epoch waited for the next poll (2 s epochs). A poll is one small
# actor call per worker; one left hanging is awaited again the next round, not failed (10 min limit).
_POLL_INTERVAL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
_POLL_INTERVAL_S = "0.5"


@contextlib.contextmanager
def _controller_settings():
    """Ray Train hands the driver's RAY_TRAIN_* variables to the controller it starts in `fit()` (whoever started
    Ray: ppipe, a cluster, a user's notebook); ppipe's poll interval goes that way unless the user set one."""
    if _POLL_INTERVAL_ENV in os.environ:
        yield
        return
    os.environ[_POLL_INTERVAL_ENV] = _POLL_INTERVAL_S
    try:
        yield
    finally:
        os.environ.pop(_POLL_INTERVAL_ENV, None)


# Where the S3/MinIO run storage is: settings, not secrets, that a cluster's workers need to reach the driver's
# storage. Keys, tokens and API keys are deliberately absent (`init_ray`).
_STORAGE_LOCATION_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION")


def _storage_location_env() -> dict[str, str]:
    return {k: os.environ[k] for k in _STORAGE_LOCATION_VARS if k in os.environ}


def init_ray(cfg: Config) -> None:
    import ray

    if ray.is_initialized():
        return
    # No credential ever goes into the job's runtime_env: Ray writes a runtime_env into its logs (the runtime env
    # agent's, readable by every user of the machine) and shows it on a cluster's dashboard. The instance started
    # below inherits this process's environment, workers included; a cluster's nodes get credentials from the
    # cluster (Kubernetes secrets, instance roles: infra/README.md). Only where the run storage is travels along.
    # What the run's processes log (glog levels, warnings, --verbose) does travel: their output reaches this
    # driver's stderr without Ray's and Paddle's routine lines (ppipe.console).
    from ppipe import console

    env = console.worker_env(console.verbose())
    if cfg.Ray.address:
        env |= _storage_location_env()
        ray.init(address=cfg.Ray.address, log_to_driver=True, runtime_env={"env_vars": env} if env else None)
        console.route_ray_output()
        return
    # The embedded instance is one node that nothing drains: Ray Train's preemption watcher (an actor polling
    # the GCS for draining nodes) has nothing to watch there, and would be one more process waking up 100
    # times a second beside the training threads. A user's own setting wins.
    if _PREEMPTION_WATCHER_ENV not in os.environ:
        env[_PREEMPTION_WATCHER_ENV] = "0"
    # A local instance with room for every worker even on a 2-core machine: workers are processes that
    # share the cores; their math threads are capped separately (threads_per_worker).
    need = max(1, cfg.Ray.num_workers) * cfg.Ray.cpus_per_worker
    # Ray starts its workers at nice 15 (`worker_niceness`) so that its own processes win the CPU; here the
    # workers ARE the job, and on a small machine Ray's ~6% of background work (GCS, raylet, Ray Train's
    # controller actors) then preempts the training threads at every wake-up, stalling their OpenMP
    # barriers (measured: 10% lower throughput on the quickstart's 30 ms steps). Clusters: infra/ sets the same.
    # For the same reason Ray's processes start at SCHED_BATCH, and only the training threads run at
    # SCHED_OTHER (ppipe.train.scheduling).
    from ppipe.train.scheduling import background_policy

    with background_policy():
        ray.init(address="local", num_cpus=max(os.cpu_count() or 1, int(need + 0.999)), include_dashboard=False,
                 log_to_driver=True, configure_logging=False, runtime_env={"env_vars": env},
                 _system_config={"worker_niceness": 0})
    console.route_ray_output()


def _trainer_class(cfg: Config):
    """Ray Train's trainer with only the helper actors a ppipe run uses (`ppipe.train.ray_trainer`): fewer on the
    embedded instance than on a cluster."""
    from ppipe.train.ray_trainer import EmbeddedInstanceTrainer, PpipeTrainer

    return PpipeTrainer if cfg.Ray.address else EmbeddedInstanceTrainer


def resolve_use_gpu(cfg: Config, cluster_resources: dict[str, float], *,
                    work: str = "training") -> tuple[bool, str]:
    """Whether this run's workers take GPUs (`Ray.use_gpu`, or with it unset `Global.device` and the GPUs
    the Ray cluster has), and the sentence the run logs about it (`work`: what the workers do)."""
    if cfg.Ray.use_gpu is not None:
        return cfg.Ray.use_gpu, (f"Ray.use_gpu: {str(cfg.Ray.use_gpu).lower()}: {work} on "
                                 f"{'GPU' if cfg.Ray.use_gpu else 'CPU'} workers")
    if cfg.Global.device != "gpu":
        return False, f"Global.device: cpu: {work} on CPU workers"
    gpus = int(cluster_resources.get("GPU", 0))
    if gpus:
        return True, f"Global.device: gpu: {work} on GPU workers (the Ray cluster has {gpus} GPUs)"
    return False, (f"Global.device: gpu, but the Ray cluster has no GPUs: {work} on CPU workers. Set "
                   "Ray.use_gpu: true to wait for GPU nodes instead (an autoscaling cluster)")


def _run_name(cfg: Config, storage: str, resume: str | bool | None) -> str:
    """A fresh `<run_name>-<UTC time>`, or the run `resume` names (True: the newest run of this config), which must
    exist (`ppipe.train.runs`)."""
    if not resume:
        return fresh_run_name(cfg.run_name)
    return run_to_resume(storage, cfg.run_name, resume)


def _absolute(path):
    """Ray workers run in their own working directory: weight paths given relative to ours must be absolute."""
    return os.path.abspath(path) if isinstance(path, str) and path and "://" not in path else path


def _absolute_arch_weights(kwargs: dict[str, Any]) -> dict[str, Any]:
    """`Arch` arguments with every weight path absolute (a distillation run's members at any depth)."""
    from ppipe.models.distillation import map_member_weights

    return map_member_weights(kwargs, _absolute)


def resolved_for_workers(cfg: Config, use_gpu: bool) -> Config:
    """The config the workers train with: weight paths absolute (`Arch.pretrained: PATH` as
    `Global.pretrained_model`, see `start_weights`) and the GPU placement decided. A new Config; `cfg` is left as
    it was."""
    from ppipe.train.pretrained import start_weights

    return replace(cfg, Global=replace(cfg.Global, pretrained_model=_absolute(start_weights(cfg))),
                   Arch=replace(cfg.Arch, kwargs=_absolute_arch_weights(cfg.Arch.kwargs)),
                   Ray=replace(cfg.Ray, use_gpu=use_gpu))


def _place_workers(cfg: Config) -> bool:
    """Whether the workers take GPUs, said in the log (a warning when a GPU recipe gets none)."""
    import ray

    asked_for_gpus = cfg.Ray.use_gpu is None and cfg.Global.device == "gpu"
    from ppipe.train.capacity import check_capacity, has_autoscaler

    use_gpu, placement = resolve_use_gpu(cfg, ray.cluster_resources())
    (log.warning if asked_for_gpus and not use_gpu else log.info)(placement)
    # A run the cluster can never hold fails now, naming the settings, instead of retrying its start forever.
    check_capacity(cfg.Ray, ray.cluster_resources(), has_autoscaler(), use_gpu=use_gpu)
    return use_gpu


def math_threads_per_worker(cfg: Config) -> tuple[int, str]:
    """Each training worker's math threads (OMP/MKL_NUM_THREADS), and why that many: `Ray.threads_per_worker`
    when set; on the embedded instance the CPUs this process may use, shared among the workers (one worker on a
    2-core machine trains on both cores, though it reserves one CPU from Ray: measured 1.4x on ResNet50_vd);
    on a cluster, where other jobs share the nodes, the CPUs each worker reserves (`Ray.cpus_per_worker`)."""
    if cfg.Ray.threads_per_worker:
        return cfg.Ray.threads_per_worker, "Ray.threads_per_worker"
    reserved = max(1, int(cfg.Ray.cpus_per_worker))
    if cfg.Ray.address:
        return reserved, f"Ray.cpus_per_worker={cfg.Ray.cpus_per_worker} on a cluster"
    cpus = len(os.sched_getaffinity(0))
    workers = max(1, cfg.Ray.num_workers)
    return max(reserved, cpus // workers), f"{cpus} CPUs on this machine, {workers} worker(s)"


def _fit(job, run_name: str, storage: str):
    """Run `job` on Ray Train workers (restarting failed ones from the last checkpoint); returns Ray's result."""
    import ray.train

    from ppipe.train.backend import PaddleBackendConfig
    from ppipe.train.loop import train_loop

    cfg = job.config
    threads, why = math_threads_per_worker(cfg)
    log.info("training with %d math thread(s) per worker (%s)", threads, why)
    threads = str(threads)
    trainer = _trainer_class(cfg)(
        train_loop,
        train_loop_config={"job": job},
        backend_config=PaddleBackendConfig(backend="nccl" if cfg.Ray.use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.Ray.num_workers, use_gpu=cfg.Ray.use_gpu,
            resources_per_worker=None if cfg.Ray.use_gpu else {"CPU": cfg.Ray.cpus_per_worker}),
        run_config=ray.train.RunConfig(
            name=run_name, storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=cfg.Ray.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            worker_runtime_env={"env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}}),
    )
    with _controller_settings():
        result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training run {run_name} finished without a checkpoint")
    return result


def train(cfg: Config, *, data: str | None = None, resume: str | bool | None = None) -> TrainResult:
    """Train `cfg` on Ray; returns where the final checkpoint is and what it scored. `cfg` is not changed."""
    from ppipe.config import check_class_num
    from ppipe.data import open_prepared, resolve_prepared

    # Opened here, so a wrong path or a class count the data does not have fails at once, naming them, rather than
    # on every worker.
    dataset = open_prepared(resolve_prepared(cfg, data))
    check_class_num(cfg, dataset.num_classes)
    prepared = dataset.url
    storage = _storage_path(cfg)
    run_name = _run_name(cfg, storage, resume)
    resolved, result = _fit_until_done_or_stopped(cfg, prepared, RunStorage(storage, run_name))
    return _collect(resolved, result, run_name)


def _fit_until_done_or_stopped(cfg: Config, prepared: str, run: RunStorage):
    """Start Ray and train (the resolved config and Ray's result). On SIGINT/SIGTERM: stop the workers, shut down
    the Ray instance started here and raise RunInterrupted naming the run's last checkpoint
    (`ppipe.train.interrupt`)."""
    import ray

    from ppipe.train.interrupt import RunInterrupted, stop_on_signals
    from ppipe.train.loop import WorkerJob
    from ppipe.train.runs import latest_checkpoint

    invocation = utc_stamp()  # this call's attempts
    owns_ray = not ray.is_initialized()
    with stop_on_signals() as signals:
        try:
            init_ray(cfg)
            signals.install()  # ray.init put its own SIGTERM handler (an immediate exit) in place of ours
            resolved = resolved_for_workers(cfg, _place_workers(cfg))
            job = WorkerJob(config=resolved, prepared=prepared, attempts_dir=run.attempts(invocation),
                            workers_dir=run.workers(invocation))
            return resolved, _fit(job, run.name, run.storage)
        except KeyboardInterrupt:
            if owns_ray:
                ray.shutdown()
            raise RunInterrupted(signals.received(), run.name, latest_checkpoint(run.storage, run.name)) from None


def _collect(cfg: Config, result, run_name: str) -> TrainResult:
    """The run's local copy of its published weights and reports (what evaluate/export/publish and DVC read)."""
    from ppipe.build import infer_arch
    from ppipe.train.checkpoint import load_state, write_published_weights

    run_dir = RunDir.for_config(cfg)
    with result.checkpoint.as_directory() as ckpt_dir:
        state = load_state(ckpt_dir)
        os.makedirs(run_dir.root, exist_ok=True)
        write_published_weights(ckpt_dir, run_dir.model)
    res = TrainResult(model=infer_arch(cfg).name, epochs_completed=state.epochs_completed,
                      top1=state.final_metrics.get("top1"), checkpoint=checkpoint_uri(result.checkpoint),
                      restarts=state.restarts, train_img_per_s=_steady_throughput(state.history), run_name=run_name,
                      run_dir=run_dir.root, history=state.history, precision=state.precision)
    _write_outputs(cfg, run_dir, res)
    return res


def checkpoint_uri(checkpoint) -> str:
    """A Ray Train checkpoint as a URL that ppipe.storage reads: a local path, or `<scheme>://path`."""
    fs = checkpoint.filesystem
    scheme = getattr(fs, "type_name", "local")
    return checkpoint.path if scheme == "local" else f"{scheme}://{checkpoint.path}"


def _steady_throughput(history: list[dict]) -> float:
    # The first epoch of a process includes warm-up beyond the skipped steps; report the later epochs.
    rates = [h["train_img_per_s"] for h in history if h.get("train_img_per_s")]
    later = rates[1:] or rates
    return float(sum(later) / len(later)) if later else 0.0


def _write_outputs(cfg: Config, run_dir: RunDir, res: TrainResult) -> None:
    """DVC metrics (JSON), per-epoch curves for `dvc plots`, the run summary and the resolved config the workers
    trained with, all written atomically."""
    from ppipe.tracking import log_run

    write_bytes_atomic(run_dir.summary, json.dumps(res.summary(), indent=1).encode())
    final = res.history[-1] if res.history else {}
    write_bytes_atomic(run_dir.metrics, json.dumps(
        {"train": {k: final.get(k) for k in ("top1", "top5", "train_loss", "val_loss")} |
         {"epochs": res.epochs_completed, "train_img_per_s": res.train_img_per_s}}, indent=1).encode())
    columns = ("epoch", "train_loss", "val_loss", "top1", "top5", "lr")
    rows = [",".join(columns)] + [",".join(str(h.get(k, "")) for k in columns) for h in res.history]
    write_bytes_atomic(run_dir.curves, ("\n".join(rows) + "\n").encode())
    write_bytes_atomic(run_dir.config, config_to_yaml(cfg).encode())
    log_run(cfg, res)
