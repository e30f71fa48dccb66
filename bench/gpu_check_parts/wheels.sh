#!/usr/bin/env bash
# Fill .whl/ (git-ignored through .git/info/exclude) with the Python packages bench/gpu_check.py
# needs on the lent GPU machine beyond its image's own (python3 3.12 with torch, torchvision,
# numpy, scikit-image, pyarrow, timm, rich, ...; no deepspeed, sam2, hydra, pycocotools,
# open_clip; older transformers / huggingface_hub): the same versions as this checkout's .venv,
# as cp312 manylinux wheels, or built here (pure Python) where PyPI has only a source package.
# Run from the repository root: bash bench/gpu_check_parts/wheels.sh   (about 30 MB, a minute)
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-.whl}
PYVER=${PYVER:-3.12}  # the GPU image's python3
TAG=cp${PYVER/./}
PACKAGES=(transformers huggingface_hub httpx2 httpcore2 h11 truststore anyio idna typing_extensions kernels tomlkit
          click hf_xet tokenizers safetensors peft accelerate typer shellingham annotated-doc
          deepspeed hjson pydantic pydantic_core annotated-types typing-inspection
          sam2 hydra-core omegaconf antlr4-python3-runtime iopath pycocotools open_clip_torch ftfy wcwidth)
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf "$OUT" && mkdir -p "$OUT"
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64)
for name in "${PACKAGES[@]}"; do
  version=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")
  if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
        "${PLATFORMS[@]}" -d "$OUT" "$name==$version" 2>/dev/null; then
    echo "building $name==$version (no wheel on PyPI)"
    SAM2_BUILD_CUDA=0 DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$OUT" "$name==$version"
  fi
done
ls "$OUT" | grep -v -E "none-any|$TAG|abi3" && { echo "error: a wheel above is not for Python $PYVER"; exit 1; }
du -sh "$OUT"
