#!/usr/bin/env bash
# Installs everything stylize needs to build, test and benchmark on Debian 12.
# Idempotent: packages already present are skipped by apt. Run as root (or with sudo).
set -euo pipefail

packages=(
  build-essential cmake pkg-config ninja-build
  libtorch-dev            # LibTorch 1.13 (CPU)
  libopenblas0-pthread    # without it torch's matmuls fall back to reference BLAS, ~40x slower
  libopencv-dev           # image decode/encode (only src/image/ includes it)
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev
  libcurl4-openssl-dev libhdf5-dev libcpp-httplib-dev
  libssl-dev              # libcrypto's EVP digests (MD5, SHA-256) for downloads and training inputs
  libdnnl-dev             # oneDNN, as LibTorch uses it: bf16 Gram products with fp32 results
  libsqlite3-dev          # serve's durable job store (--data-dir)
  libhiredis-dev          # serve/worker --queue redis://: optional at build time (CMake says when absent)
  redis-server            # the Redis tests start one on a loopback port (never skipped in CI)
  clang libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer with ASan and UBSan
)
if [ "${STYLIZE_WITH_PYTHON:-1}" = 1 ]; then
  # Reference implementation for parity fixtures and benchmarks, and the gallery's contact sheets
  # (Pillow, DejaVu font); not needed to build.
  packages+=(python3-torch python3-torchvision python3-numpy python3-pil fonts-dejavu-core)
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
