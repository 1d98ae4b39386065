#!/bin/sh
# Fails when an engine source includes a header of a layer above it (image I/O, weights tools,
# server, CLI): the engine builds where only LibTorch is installed (bench/gpu.sh, STYLIZE_ENGINE_ONLY).
cd "$1" && shift
if grep -nE '#include "(stylize/(image|weights_tools)/|\.\./(server|cli|image|weights_tools)/)' "$@"; then
  echo "engine sources above include headers of the layers over the engine" >&2
  exit 1
fi
if grep -nE '#include "stylize/(image|weights_tools)/' include/stylize/*.hpp; then
  echo "engine headers above include headers of the layers over the engine" >&2
  exit 1
fi
echo "1 passed, 0 failed"
