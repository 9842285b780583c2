"""Typed, validated run configuration (PaddleClas-style YAML + `-o` overrides)."""

from ppipe.config.loader import apply_overrides, config_to_data, config_to_yaml, load_config
from ppipe.config.schema import Config
from ppipe.errors import ConfigError

__all__ = ["Config", "ConfigError", "apply_overrides", "config_to_data", "config_to_yaml", "load_config"]
