#!/usr/bin/env bash
# Remakes README's gallery (docs/gallery/*.jpg and runs.json) from ../shared/images and the real
# VGG19 prefix in ../shared/weights: every result is a real stylize run. About 11 minutes on 2 cores
# with AMX (bf16), ~3x longer on CPUs without it. SIZE=… ITERATIONS=… OUT=… change what it renders.
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${SHARED:-../shared}"
if [ ! -f "$shared/weights/vgg19-conv1-3-real.safetensors" ] || [ ! -d "$shared/images" ]; then
  echo "gallery: needs $shared/weights/vgg19-conv1-3-real.safetensors and $shared/images (set SHARED=…)" >&2
  exit 1
fi
bash scripts/install-deps.sh
bash scripts/build.sh >/dev/null
SHARED="$shared" /usr/bin/python3 scripts/gallery.py
