#!/usr/bin/env bash
# Create .venv with pytest-onnxparity (editable), onnxruntime (the cpu extra) and everything its
# tests and examples use.
#
# torch==2.13.0 goes in first, so the extras that depend on torch resolve to it. The CPU build
# comes from PyTorch's CPU wheel index; where that index cannot be reached, the pin is installed
# from the configured indexes instead, which off this kind of machine means PyPI's torch: the
# CUDA build with about 20 nvidia-*/cuda-*/triton packages. The last lines say which build it
# was.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_PIN="torch==2.13.0"
CPU_INDEX="https://download.pytorch.org/whl/cpu"

if ! command -v espeak-ng >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing espeak-ng (speech clips for the sequence tests)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip

if .venv/bin/python - "$CPU_INDEX" <<'PY'
import sys
import urllib.request

index = sys.argv[1]
try:
    urllib.request.urlopen(f"{index}/torch/", timeout=10).close()
except Exception as error:  # DNS, refused, timeout, proxy: all mean "not from here"
    print(f"setup: PyTorch's CPU index {index} cannot be reached ({type(error).__name__}: {error})")
    sys.exit(1)
PY
then
    echo "setup: installing $TORCH_PIN from PyTorch's CPU index $CPU_INDEX"
    .venv/bin/python -m pip install -q --index-url "$CPU_INDEX" "$TORCH_PIN"
else
    echo "setup: installing $TORCH_PIN from pip's configured indexes instead (PyPI unless pip is configured otherwise)"
    .venv/bin/python -m pip install -q "$TORCH_PIN"
fi
.venv/bin/python - <<'PY'
from importlib import metadata

import torch

cuda_packages = sorted(
    dist.metadata["Name"]
    for dist in metadata.distributions()
    if dist.metadata["Name"].lower().startswith(("nvidia-", "cuda-", "triton"))
)
if torch.version.cuda is None:
    print(f"setup: torch {torch.__version__} is the CPU build ({len(cuda_packages)} CUDA packages)")
else:
    print(
        f"setup: torch {torch.__version__} is the CUDA {torch.version.cuda} build, with "
        f"{len(cuda_packages)} CUDA packages ({', '.join(cuda_packages)}); for the CPU build run "
        "this where https://download.pytorch.org/whl/cpu can be reached"
    )
PY

.venv/bin/python -m pip install -q -e ".[cpu,torch,speech,plot,speed,test,integration]"
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch, onnxruntime; print("torch", torch.__version__, "onnxruntime", onnxruntime.__version__)'))"
