#!/usr/bin/env bash
# Point DVC at the S3 remote (MinIO, AWS S3, or moto in tests): infra/dvc/setup-remote.sh s3://bucket/dvc [ENDPOINT]
set -euo pipefail
url="${1:?usage: setup-remote.sh s3://bucket/prefix [endpoint-url]}"
endpoint="${2:-${AWS_ENDPOINT_URL:-}}"
dvc remote add -f -d store "$url"
if [ -n "$endpoint" ]; then dvc remote modify store endpointurl "$endpoint"; fi
echo "DVC remote 'store' -> $url ${endpoint:+(endpoint $endpoint)}; now: dvc push / dvc pull"
