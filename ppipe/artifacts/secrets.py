"""Credentials never reach the artifact store.

ppipe takes credentials from the environment or the instance profile only and never writes them anywhere; this
is the check that keeps it so at the one place where run files leave the machine. Before a publish uploads
anything, the values of the environment's credential variables (`is_credential_name`: AWS keys, `WANDB_API_KEY`,
anything named like a token, secret, password or key) are searched for in the manifest's fields and in every
text-sized file being published; a hit refuses the publish, naming the variable and the file but never the value.
"""

from __future__ import annotations

import json
import os
import re

from ppipe.artifacts.refs import ArtifactError

_CREDENTIAL_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE_KEY|SESSION_KEY|CREDENTIAL)",
                              re.IGNORECASE)
MIN_SECRET_LEN = 8  # shorter values ("testing", "1") would match by chance in any file
MAX_SCANNED_FILE = 16 << 20  # weights and inference models are binary and large; configs and reports are small


def is_credential_name(var: str) -> bool:
    return bool(_CREDENTIAL_NAME.search(var))


def environment_credentials() -> dict[str, bytes]:
    """{variable name: value} of the environment's credentials long enough to be searched for."""
    return {k: v.encode("utf-8") for k, v in os.environ.items()
            if is_credential_name(k) and len(v) >= MIN_SECRET_LEN}


def refuse_credentials(name: str, files: dict[str, str], fields: dict) -> None:
    """`ArtifactError` when a credential's value is in `fields` (the manifest's metrics/metadata/lineage) or in a
    file of `files` ({name inside the artifact: local path}) up to `MAX_SCANNED_FILE` bytes."""
    creds = environment_credentials()
    if not creds:
        return
    where: list[str] = []
    manifest_text = json.dumps(fields).encode("utf-8")
    where += [f"the manifest (${var})" for var, value in creds.items() if value in manifest_text]
    for rel, local in sorted(files.items()):
        if os.path.getsize(local) > MAX_SCANNED_FILE:
            continue
        with open(local, "rb") as f:
            data = f.read()
        where += [f"{rel} (${var})" for var, value in creds.items() if value in data]
    if where:
        raise ArtifactError(f"artifact {name!r}: refusing to publish a credential from the environment, found in "
                            + ", ".join(where) + "; credentials belong in the environment or the instance profile")
