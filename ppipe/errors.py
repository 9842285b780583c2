"""The exceptions that mean "the input is wrong" (reported in one line, exit status 2) rather than a bug."""

from ppipe.config.typed import ConfigError


def _collect() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConfigError, FileNotFoundError, KeyError, ValueError]
    for module, name in (("ppipe.data", "DatasetError"), ("ppipe.artifacts", "ArtifactError"),
                         ("ppipe.export", "ExportError")):
        try:
            errors.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


USER_ERRORS = _collect()
