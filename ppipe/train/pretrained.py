"""The weights a training run starts from, under PaddleClas's three settings for them.

- `Global.pretrained_model: PATH`: loaded into the model before training (fine-tuning; a different class count
  skips the classifiers, `ppipe.models.load_pretrained`).
- `Arch.pretrained: PATH`: PaddleClas loads this path into the backbone as it is built; ppipe treats it as
  `Global.pretrained_model` (which wins when both are set, as it is loaded last in PaddleClas too).
  `Arch.pretrained: True` makes PaddleClas download the zoo's weights; ppipe downloads nothing, so it is refused
  with what to do instead.
- `Global.checkpoints: PREFIX`: PaddleClas resumes model, optimizer and epoch from `PREFIX.pdparams/.pdopt/
  .pdstates`; ppipe resumes a run from its own checkpoints with `ppipe train --resume`, so it is refused rather
  than silently ignored.
"""

from __future__ import annotations

from ppipe.config import Config, ConfigError


def start_weights(cfg: Config) -> str | None:
    """The `.pdparams` path the run's model is initialised from (None: fresh initialisation); `ConfigError`
    for the settings ppipe does not honour (see the module docstring)."""
    if cfg.Global.checkpoints:
        raise ConfigError(f"Global.checkpoints={cfg.Global.checkpoints!r}: ppipe does not resume from PaddleClas "
                          "checkpoint prefixes; continue a ppipe run with `ppipe train CONFIG --resume [RUN]`, or "
                          "start from weights with Global.pretrained_model=PATH.pdparams")
    arch = cfg.Arch.pretrained
    if arch is True:
        raise ConfigError("Arch.pretrained: True downloads the zoo's weights in PaddleClas; ppipe downloads "
                          "nothing: set Global.pretrained_model=PATH to a local .pdparams file instead")
    if cfg.Global.pretrained_model:
        return cfg.Global.pretrained_model
    return arch if isinstance(arch, str) and arch else None
