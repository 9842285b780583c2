"""The exceptions that mean "the input is wrong" (reported in one line, exit status 2) rather than a bug.

The lowest module of ppipe: every package may raise these, so it imports nothing from ppipe.
"""


class UserError(ValueError):
    """The input (a config, a dataset, an artifact, a file) is wrong; the message names it and what was expected."""


class ConfigError(UserError):
    """A configuration value is missing, unknown or of the wrong type; the message names its key."""
