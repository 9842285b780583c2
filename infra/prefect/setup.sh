#!/usr/bin/env bash
# Scheduled retraining and zoo sweeps: a work pool, the `ppipe-train` concurrency limit, the deployments of
# prefect.yaml, and a worker. POOL=process (default) runs flow runs as processes on this host (the checkout is
# this folder); POOL=kubernetes runs each as a Job of the ppipe-cpu image (base job templates in this folder;
# needs `pip install prefect-kubernetes` on the worker), which submits training to the KubeRay cluster (infra/ray).
# MAX_TRAININGS caps the trainings running at once across every flow run (tasks tagged ppipe-train).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PPIPE_HOME="${PPIPE_HOME:-$(pwd)}"
: "${PREFECT_API_URL:?set PREFECT_API_URL, e.g. http://prefect-server:4200/api}"
POOL="${POOL:-process}"
MAX_TRAININGS="${MAX_TRAININGS:-1}"   # one local Ray instance per host: one training at a time
case "$POOL" in
  process) name=ppipe ;;
  kubernetes) name=ppipe-k8s ;;
  *) echo "POOL must be process or kubernetes, got $POOL" >&2; exit 2 ;;
esac
prefect work-pool create "$name" --type "$POOL" --base-job-template "infra/prefect/$POOL-pool.json" --overwrite
prefect concurrency-limit delete ppipe-train >/dev/null 2>&1 || true
prefect concurrency-limit create ppipe-train "$MAX_TRAININGS"
if [ "$POOL" = kubernetes ]; then
  # the deployments name the `ppipe` pool; send them to the Kubernetes pool instead
  prefect --no-prompt deploy --all --pool "$name"
else
  prefect --no-prompt deploy --all
fi
exec prefect worker start --pool "$name" --type "$POOL"
