"""ppipe: a production pipeline for PaddleClas's ImageNet-1k model zoo.

Stages (data, train, evaluate, export, artifacts) are plain functions with typed configs; the `ppipe` CLI
exposes them, `dvc.yaml` calls the CLI, and `flows/` (Prefect) orchestrates them. This package never imports
Prefect.
"""

__version__ = "0.1.0"
