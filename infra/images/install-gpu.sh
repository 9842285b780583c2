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
# TensorRT's Python API for `ppipe deploy tensorrt`, and its libraries for Paddle-TRT: 10.x, the major version
# Paddle 3.3.1's cu126 wheels pair with (10.5) and the one whose fp16/int8 builder flags and INT8 calibrators the
# engine build uses for fp16 and implicit INT8 (TensorRT 11 removed them and builds fp32 and Q/DQ INT8 only;
# ppipe.export.tensorrt_engine.TENSORRT_REQUIREMENT).
TENSORRT_REQUIREMENT="${TENSORRT_REQUIREMENT:-tensorrt-cu12>=10.5,<11}"
python -m pip install --no-cache-dir "${TENSORRT_REQUIREMENT}"
# Paddle-TRT dlopens libnvinfer by name: put the wheel's library folder on the loader's path
python -c 'import os, tensorrt_libs; print(os.path.dirname(tensorrt_libs.__file__))' > /etc/ld.so.conf.d/tensorrt.conf
ldconfig
python - <<'PY'
import paddle
assert paddle.device.is_compiled_with_cuda(), "paddlepaddle-gpu did not install a CUDA build"
paddle.utils.run_check()
import tensorrt
assert tensorrt.__version__.split(".")[0] == "10", f"TensorRT {tensorrt.__version__}: the engine build needs 10.x"
PY
