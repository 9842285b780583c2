"""The Prefect flow run a task belongs to, made visible to ppipe.

ppipe records the flow run in each published artifact's lineage from `PREFECT__FLOW_RUN_ID` (ppipe never imports
prefect). A worker sets that variable in the process of a flow run it starts; a flow run started in-process
(`ppipe pipeline`, `python -m flows.pipeline`, tests) has it unset, so the publishing tasks set it from Prefect's
runtime before they publish.
"""

from __future__ import annotations

import os

from prefect.runtime import flow_run

from ppipe.lineage import FLOW_RUN_ENV


def expose_flow_run_id() -> str | None:
    """Set `PREFECT__FLOW_RUN_ID` to the current flow run's id (when there is one); returns it."""
    run_id = flow_run.id
    if run_id:
        os.environ[FLOW_RUN_ENV] = str(run_id)
    return run_id
