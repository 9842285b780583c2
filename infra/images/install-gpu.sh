#!/usr/bin/env bash
# GPU image install: Paddle 3.x GPU wheels are published on Paddle's own package index, not on PyPI
# (PyPI's paddlepaddle-gpu stops at 2.6.2). CUDA_TAG picks the wheel build matching the image's CUDA.
set -euo pipefail
CUDA_TAG="${CUDA_TAG:-cu126}"
PADDLE_VERSION="${PADDLE_VERSION:-3.3.1}"
python -m pip install --no-cache-dir -e "${PPIPE_SRC:-/opt/ppipe}"
python -m pip uninstall -y paddlepaddle
python -m pip install --no-cache-dir "paddlepaddle-gpu==${PADDLE_VERSION}" \
  -i "https://www.paddlepaddle.org.cn/packages/stable/${CUDA_TAG}/"
python - <<'PY'
import paddle
assert paddle.device.is_compiled_with_cuda(), "paddlepaddle-gpu did not install a CUDA build"
paddle.utils.run_check()
PY
