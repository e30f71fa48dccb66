#!/usr/bin/env bash
# Installs og and everything its tests and the quickstart need into ./.venv (idempotent).
# torch/torchvision first (the pair that works here), then sam2 built against that torch
# without an isolated build (which would download another torch), then og itself with its dev and
# lmms extras (lmms-eval, about a minute more: the lmms-eval adapter is tested on every run).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip setuptools wheel 2>&1 | grep -v "is ignored" || true
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  $PIP install -q "torch==2.14.1" "torchvision==0.29.1" 2>&1 | grep -v "is ignored" || true
fi
if ! .venv/bin/python -c "import sam2" 2>/dev/null; then
  SAM2_BUILD_CUDA=0 $PIP install -q --no-build-isolation "sam2==1.1.0" 2>&1 | grep -v "is ignored" || true
fi
$PIP install -q -e ".[dev,lmms]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import og, torch, torchvision, sam2, transformers, importlib.util as u
assert u.find_spec('lmms_eval'), 'lmms-eval did not install: see the pip output above'
print('og', og.__version__, 'installed; torch', torch.__version__)"
