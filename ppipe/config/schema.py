"""The typed form of a ppipe recipe: PaddleClas's YAML sections plus ppipe's own.

PaddleClas sections (`Global`, `AMP`, `Arch`, `Loss`, `Optimizer`, `DataLoader`, `Metric`, `Infer`, `EMA`) keep
PaddleClas's key names so its ImageNet configs load as they are. ppipe adds `Data` (where the dataset comes
from), `Ray` (where training runs), `Tracking`, `Export` and `Publish`. Keys PaddleClas has but ppipe does
not act on yet are accepted where they are harmless at their defaults and rejected with a reason otherwise
(see `ppipe.config.loader.validate`).

Every section is frozen: a loaded recipe is what the run was asked to do, and derived values (a scaled learning
rate, absolute weight paths) are computed where they are used (`dataclasses.replace` for a changed copy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ppipe.config.ranges import within

# The ranges most fields share (see ppipe.config.ranges); a field with its own reason states it inline.
COUNT = within(low=1)                           # epochs, intervals, sizes, class counts
NON_NEGATIVE = within(low=0)
POSITIVE = within(above=0)
FRACTION = within(low=0, below=1)               # a decay or momentum coefficient
RATE = within(low=0, what="a learning rate")
SHAPE = within(low=1, length=3, what="a size")  # [channels, height, width]


@dataclass(frozen=True)
class GlobalSection:
    epochs: int = field(default=1, metadata=COUNT)
    output_dir: str = "./output/"
    device: Literal["cpu", "gpu"] = "cpu"
    checkpoints: str | None = None
    pretrained_model: str | None = None
    class_num: int | None = field(default=None, metadata=COUNT)
    # ppipe: the prepared dataset may hold fewer classes than class_num (fine-tuning on a subset of the
    # model's classes); without it a dataset whose class count differs from class_num is refused when training
    # starts (`ppipe.config.check_class_num`). More dataset classes than outputs is never accepted.
    allow_class_subset: bool = False
    save_interval: int = field(default=1, metadata=COUNT)
    eval_during_train: bool = True
    eval_interval: int = field(default=1, metadata=COUNT)
    print_batch_step: int = field(default=10, metadata=COUNT)
    use_visualdl: bool = False
    image_shape: list[int] = field(default_factory=lambda: [3, 224, 224], metadata=SHAPE)
    save_inference_dir: str = "./inference"
    # PaddleClas's NVIDIA DALI input pipeline (GPU decoding). ppipe always reads its prepared shards with its own
    # loader and the same operators; a run that asks for DALI says so in its log.
    use_dali: bool = False
    to_static: bool = False
    seed: int = field(default=0, metadata=NON_NEGATIVE)  # numpy's seeds are non-negative
    update_freq: int = field(default=1, metadata=COUNT)
    # ppipe: also checkpoint every N optimizer steps inside an epoch (with the data position), not only at
    # epoch end; a restart resumes mid-epoch.
    checkpoint_every_steps: int | None = field(default=None, metadata=COUNT)
    # ppipe: the worker count the recipe's learning rate was tuned for (PaddleClas's ImageNet recipes: 8
    # GPUs); with another count the learning rate is scaled linearly (Goyal et al., 2017). None: no scaling.
    recipe_workers: int | None = field(default=None, metadata=COUNT)
    # ppipe: CPU training path. "onednn": ppipe's operators (ppipe.ops: oneDNN convolutions and activations,
    # fused BatchNorm + activation, depthwise weight gradients) and malloc keeping freed memory for the next
    # step; falls back to Paddle's kernels with a warning where the operators cannot be built. "paddle":
    # Paddle's own kernels and allocator behaviour, as PaddleClas trains. GPUs always use Paddle's (cuDNN).
    cpu_kernels: Literal["onednn", "paddle"] = "onednn"
    eval_mode: str = "classification"
    use_multilabel: bool = False
    # PaddleClas's input channel count, a YAML anchor its "ultra" configs repeat into Global.image_shape,
    # NormalizeImage.channel_num and Arch.input_image_channel: 3 (RGB), or 4 (RGB plus a zero channel, which
    # suits NHWC float16 convolutions on GPUs).
    image_channel: int = 3


@dataclass(frozen=True)
class AMPSection:
    """PaddleClas's mixed precision (float16, GPUs only; see `ppipe.train.amp`). `level`: O1 (float16 compute on
    float32 weights) or O2 (float16 weights, float32 master weights and normalisation layers); `scale_loss`: the
    initial loss scale, adapted when `use_dynamic_loss_scaling`; `use_fp16_test`: evaluate under auto_cast too
    (always so at O2)."""
    use_amp: bool = False
    use_fp16_test: bool = False
    scale_loss: float = field(default=1.0, metadata=POSITIVE)
    use_dynamic_loss_scaling: bool = False
    use_promote: bool = False
    level: Literal["O1", "O2"] = "O1"


@dataclass(frozen=True)
class ArchSection:
    name: str
    class_num: int | None = field(default=None, metadata=COUNT)
    pretrained: bool | str = False
    use_ssld: bool = False
    # PaddleClas's synchronized BatchNorm across GPU workers (ignored with a log line on CPU runs).
    use_sync_bn: bool = False
    # PaddleClas's SwinTransformer switches to its fused attention / fused linear GPU kernels. Its published recipes
    # set both to False (the plain attention and linear layers, which are the only ones ppipe's models have), so
    # False is accepted and changes nothing; True is refused by the loader.
    use_fused_attn: bool = False
    use_fused_linear: bool = False
    # Any other key is a constructor argument of the architecture (PaddleClas passes them through too);
    # the loader checks them against the model's signature (`ppipe.config.loader.check_arch_arguments`).
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LossSection:
    Train: list[Any] = field(default_factory=lambda: [{"CELoss": {"weight": 1.0}}])
    Eval: list[Any] = field(default_factory=lambda: [{"CELoss": {"weight": 1.0}}])


@dataclass(frozen=True)
class LRSection:
    name: str = "Cosine"  # a schedule of `ppipe.optim.LR_SCHEDULES`
    learning_rate: float | list[float] = field(default=0.1, metadata=RATE)
    warmup_epoch: int = field(default=0, metadata=NON_NEGATIVE)
    warmup_start_lr: float = field(default=0.0, metadata=RATE)
    eta_min: float = field(default=0.0, metadata=RATE)
    step_size: int | None = field(default=None, metadata=COUNT)
    gamma: float = field(default=0.1, metadata=POSITIVE)
    decay_epochs: list[int] | None = field(default=None, metadata=NON_NEGATIVE)
    values: list[float] | None = field(default=None, metadata=RATE)
    milestones: list[int] | None = field(default=None, metadata=NON_NEGATIVE)
    end_lr: float = field(default=0.0, metadata=RATE)
    power: float = field(default=1.0, metadata=POSITIVE)
    last_epoch: int = field(default=-1, metadata=within(low=-1))  # -1: the schedule starts from its beginning
    by_epoch: bool = False
    # PaddleClas 2.x recipes state the steps per epoch; ppipe counts them from the prepared data, so the value is
    # accepted and not used (the loader says so)
    step_each_epoch: int | None = field(default=None, metadata=COUNT)


@dataclass(frozen=True)
class RegularizerSection:
    name: Literal["L2", "L1"] = "L2"
    coeff: float = field(default=0.0, metadata=within(low=0, what="a weight decay"))


@dataclass(frozen=True)
class OptimizerSection:
    name: str = "Momentum"  # an optimizer of `ppipe.optim.OPTIMIZERS`
    momentum: float = field(default=0.9, metadata=FRACTION)
    lr: LRSection = field(default_factory=LRSection)
    regularizer: RegularizerSection | None = None
    weight_decay: float | None = field(default=None, metadata=within(low=0, what="a weight decay"))
    beta1: float = field(default=0.9, metadata=FRACTION)
    beta2: float = field(default=0.999, metadata=FRACTION)
    epsilon: float = field(default=1e-8, metadata=POSITIVE)
    rho: float = field(default=0.95, metadata=FRACTION)
    no_weight_decay_name: str | None = None
    one_dim_param_no_weight_decay: bool = False
    multi_precision: bool = False
    use_nesterov: bool = False
    # PaddleClas's `clip_grad`: before each step, scale all gradients together so that their global norm (over
    # every parameter) is at most this value (paddle.nn.ClipGradByGlobalNorm; PVTv2's B3-B5 recipes: 1.0).
    # None (YAML null): no clipping.
    clip_grad: float | None = field(default=None, metadata=within(above=0, what="a norm"))
    # PaddleClas's `clip_norm`: clip each parameter's gradient to this norm separately (paddle.nn.ClipGradByNorm).
    clip_norm: float | None = field(default=None, metadata=within(above=0, what="a norm"))


@dataclass(frozen=True)
class DatasetSection:
    name: Literal["ImageNetDataset", "PreparedDataset"] = "PreparedDataset"
    # PreparedDataset: the OUT of `ppipe data prepare` (local path or fsspec URL).
    path: str | None = None
    # ImageNetDataset (PaddleClas's list-file dataset): accepted so PaddleClas YAML loads; training reads
    # prepared shards, so such a dataset must be prepared first (`ppipe data prepare`, or `--data`).
    image_root: str | None = None
    cls_label_path: str | None = None
    delimiter: str = " "
    relabel: bool = False
    transform_ops: list[Any] = field(default_factory=list)
    batch_transform_ops: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class SamplerSection:
    name: str = "DistributedBatchSampler"
    batch_size: int = field(default=64, metadata=COUNT)
    drop_last: bool = False
    shuffle: bool = True


@dataclass(frozen=True)
class LoaderSection:
    num_workers: int = field(default=0, metadata=NON_NEGATIVE)  # 0: read in the training process
    use_shared_memory: bool = True


@dataclass(frozen=True)
class SplitLoaderSection:
    dataset: DatasetSection = field(default_factory=DatasetSection)
    sampler: SamplerSection = field(default_factory=SamplerSection)
    loader: LoaderSection = field(default_factory=LoaderSection)


@dataclass(frozen=True)
class DataLoaderSection:
    Train: SplitLoaderSection = field(default_factory=SplitLoaderSection)
    Eval: SplitLoaderSection | None = None


@dataclass(frozen=True)
class MetricSection:
    # PaddleClas leaves `Train:` empty (YAML null) where training accuracy means nothing (Mixup's soft labels) and
    # builds no training metric then (ppcls/engine/engine.py); null is read as that empty list.
    Train: list[Any] | None = field(default_factory=lambda: [{"TopkAcc": {"topk": [1, 5]}}])
    Eval: list[Any] = field(default_factory=lambda: [{"TopkAcc": {"topk": [1, 5]}}])

    def __post_init__(self):
        if self.Train is None:  # the one normalisation of a frozen section, made while it is being built
            object.__setattr__(self, "Train", [])


@dataclass(frozen=True)
class InferSection:
    infer_imgs: str | None = None
    batch_size: int = field(default=10, metadata=COUNT)
    transforms: list[Any] = field(default_factory=list)
    PostProcess: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EMASection:
    decay: float = field(default=0.9999, metadata=FRACTION)


@dataclass(frozen=True)
class DataSection:
    """Where the dataset comes from. `source`: an ImageNet-layout folder (or fsspec URL), or `digits-demo`
    for the embedded scikit-learn digits. `prepared`: where `ppipe data prepare` writes (and train reads)."""
    source: str | None = None
    prepared: str | None = None
    shard_size: int = field(default=1024, metadata=COUNT)
    demo_image_size: int = field(default=32, metadata=COUNT)


@dataclass(frozen=True)
class RaySection:
    address: str | None = None          # None: a local Ray instance; "auto" or "ray://host:10001": a cluster
    num_workers: int = field(default=2, metadata=NON_NEGATIVE)  # 0: Ray Train's in-process mode
    # None: GPU workers when Global.device is gpu (every PaddleClas recipe) and the Ray cluster has GPUs, CPU
    # workers otherwise; decided when the run starts, and logged. true/false: as said (true on a cluster without
    # GPUs waits for GPU nodes, e.g. from an autoscaler).
    use_gpu: bool | None = None
    cpus_per_worker: float = field(default=1.0, metadata=POSITIVE)
    # math threads per worker; None: the embedded instance shares the machine's CPUs among the workers, a cluster
    # uses cpus_per_worker
    threads_per_worker: int | None = field(default=None, metadata=COUNT)
    storage_path: str | None = None     # run storage (local path or s3://); None: <output_dir>/ray
    run_name: str | None = None         # None: the architecture name
    max_failures: int = field(default=2, metadata=within(low=-1))  # Ray's -1: retry without limit


@dataclass(frozen=True)
class TrackingSection:
    wandb_project: str = "ppipe"
    wandb_mode: Literal["offline", "online", "disabled"] = "offline"
    metrics_file: str | None = None     # DVC metrics JSON; None: <output_dir>/metrics.json


@dataclass(frozen=True)
class ExportSection:
    input_shape: list[int] | None = field(default=None, metadata=SHAPE)  # None: Global.image_shape
    rtol: float = field(default=1e-4, metadata=NON_NEGATIVE)
    # ppipe.export.TARGETS names to build; None: every registered target (those that cannot be built here are
    # recorded as skipped, with the reason).
    targets: list[str] | None = None
    # CPU threads in the shipped predictor configuration (predictor.json)
    threads: int = field(default=1, metadata=COUNT)
    # the FP32 x86 target's engine (ppipe.export.cpu_engine): auto builds, checks and times oneDNN and OpenVINO
    # and ships the faster; onednn or openvino ships that one
    cpu_engine: Literal["auto", "onednn", "openvino"] = "auto"
    # timed seconds per measured batch size; 0: no measurements
    measure_seconds: float = field(default=1.0, metadata=NON_NEGATIVE)
    # INT8 calibration: images drawn from the prepared train split
    calibration_images: int = field(default=256, metadata=COUNT)
    calibration_batch: int = field(default=32, metadata=COUNT)
    # INT8 targets: largest accepted top-1 drop (fraction) on the val split; beyond it the target fails.
    int8_max_top1_drop: float = field(default=0.01, metadata=within(low=0, high=1))
    # val images the INT8 accuracy change is measured on; None: all
    int8_eval_images: int | None = field(default=1000, metadata=COUNT)
    # the tensorrt target's Q/DQ model: seconds its sensitive-layer search may take when the model fails its
    # check (a session of the whole model per layer; ppipe.export.tensorrt_qdq); 0: no search
    qdq_search_seconds: float = field(default=60.0, metadata=NON_NEGATIVE)


@dataclass(frozen=True)
class QuantizationSection:
    """INT8 quantization (`ppipe.quantization`). `mode: qat` trains with fake-quantized weights and activations
    (PaddleClas's `Slim.quant` through PaddleSlim), and the INT8 export then uses the scales learnt; `ptq`
    calibrates a trained FP32 model on `Export.calibration_images` images instead."""
    mode: Literal["ptq", "qat"] = "ptq"
    weight_bits: int = field(default=8, metadata=COUNT)
    activation_bits: int = field(default=8, metadata=COUNT)
    moving_rate: float = field(default=0.9, metadata=FRACTION)  # QAT: moving average of the activation abs-max
    # PTQ: a layer whose input quantization alone moves the logits by more than this (mean squared difference
    # over the mean squared logit, on the first calibration batch) stays FP32 (ppipe.quantization)
    max_layer_error: float = field(default=0.01, metadata=within(low=0, high=1))


@dataclass(frozen=True)
class PublishSection:
    store: str | None = None            # None: $PPIPE_STORE, else ./artifacts
    name: str | None = None             # None: the architecture name
    aliases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TuneSection:
    """`ppipe tune` settings (ppipe.tune); a search file's own `Tune:` block overrides these keys."""
    num_samples: int = field(default=4, metadata=COUNT)  # samples of the search space (times each grid() combination)
    scheduler: Literal["asha", "pbt"] = "asha"
    metric: str = "top1"                # an epoch metric of the training loop (top1, top5, val_loss, train_loss)
    mode: Literal["max", "min"] = "max"
    # None: as many as the cluster's CPUs hold trials' workers
    max_concurrent_trials: int | None = field(default=None, metadata=COUNT)
    grace_period: int = field(default=1, metadata=COUNT)  # ASHA: epochs every trial runs before it can be stopped
    # ASHA: keep the top 1/reduction_factor at each rung
    reduction_factor: int = field(default=2, metadata=within(low=2))
    perturbation_interval: int = field(default=2, metadata=COUNT)  # PBT: epochs between exploit/explore steps
    # PBT: exploit only when every trial has reached the interval (Ray's synchronous PBT). Reproducible for small
    # populations, where an asynchronous step can find the other trials not yet ranked; slower for large ones.
    synch: bool = False
    storage_path: str | None = None     # experiment storage (local path or s3://); None: <output_dir>/tune
    name: str | None = None             # experiment name; None: <run name>-tune


@dataclass(frozen=True)
class Config:
    Arch: ArchSection
    Global: GlobalSection = field(default_factory=GlobalSection)
    AMP: AMPSection = field(default_factory=AMPSection)
    Loss: LossSection = field(default_factory=LossSection)
    Optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    DataLoader: DataLoaderSection = field(default_factory=DataLoaderSection)
    Metric: MetricSection = field(default_factory=MetricSection)
    Infer: InferSection | None = None
    EMA: EMASection | None = None
    Data: DataSection = field(default_factory=DataSection)
    Ray: RaySection = field(default_factory=RaySection)
    Tracking: TrackingSection = field(default_factory=TrackingSection)
    Export: ExportSection = field(default_factory=ExportSection)
    Quantization: QuantizationSection | None = None
    Publish: PublishSection = field(default_factory=PublishSection)
    Tune: TuneSection = field(default_factory=TuneSection)

    @property
    def num_classes(self) -> int:
        return self.Arch.class_num or self.Global.class_num or 1000

    @property
    def run_name(self) -> str:
        return self.Ray.run_name or self.Arch.name
