#!/usr/bin/env bash
# Scheduled retraining: a Prefect server, a `process` work pool named ppipe, the deployments of prefect.yaml,
# and a worker. On Kubernetes use a `kubernetes` pool instead (prefect work-pool create ppipe --type kubernetes)
# with the ppipe-cpu image; the flow then reaches Ray through Ray.address.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PPIPE_HOME="$(pwd)"
: "${PREFECT_API_URL:?set PREFECT_API_URL, e.g. http://prefect-server:4200/api}"
prefect work-pool create ppipe --type process --overwrite
prefect --no-prompt deploy --all
exec prefect worker start --pool ppipe
