"""Typed, validated run configuration (PaddleClas-style YAML + `-o` overrides)."""

from ppipe.config.class_count import check_class_num
from ppipe.config.loader import config_to_data, config_to_yaml, load_config
from ppipe.config.overrides import apply_overrides
from ppipe.config.schema import Config
from ppipe.errors import ConfigError

__all__ = ["Config", "ConfigError", "apply_overrides", "check_class_num", "config_to_data", "config_to_yaml",
           "load_config"]
