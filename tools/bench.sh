#!/usr/bin/env bash
# Quick start: installs what is missing, builds signvote-bench and runs it (arguments are passed
# on; without any, a small default sweep). Uses the GPU when this version has a CUDA backend
# and a GPU is present, the host backend otherwise; the header line says which.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/cuda/bin:$PATH"
bash tools/install-deps.sh
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DSIGNVOTE_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench --target signvote-bench >/dev/null
exec ./build-bench/tools/signvote-bench "$@"
