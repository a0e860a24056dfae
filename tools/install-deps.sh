#!/usr/bin/env bash
# Installs the Debian packages signvote needs to build and test, skipping those already there.
# The CUDA toolkit (nvcc, NCCL, CUB) is expected under /usr/local/cuda.
set -euo pipefail
pkgs=(cmake ninja-build g++ libgtest-dev libboost-program-options-dev libboost-context-dev
      python3 nlohmann-json3-dev libopenblas-dev zlib1g-dev dataset-fashion-mnist clang
      libclang-rt-14-dev libgloo-dev openmpi-bin pkgconf)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "signvote: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v nvcc >/dev/null 2>&1; then
  if [ -x /usr/local/cuda/bin/nvcc ]; then
    echo "signvote: add /usr/local/cuda/bin to PATH (nvcc)" >&2
  else
    echo "signvote: nvcc not found; install the CUDA toolkit (13.0)" >&2
    exit 1
  fi
fi
