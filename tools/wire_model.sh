#!/usr/bin/env bash
# The modeled wire costs of docs/benchmarks.md (issue 5, link model, communication term):
# signvote-bench --mode wire, every scheme at 1 % density over 1M..256M floats, for one 8-GPU
# node (W = 8: nvlink8, ndr, 100gbe) and two (W = 16: ndr, 100gbe). No device is needed.
# Writes the raw output and JSON to bench/results/<date>-<commit>-wire-w{8,16}.{txt,json}, then
# docs/benchmarks.md and docs/benchmarks-wire.png.
# Usage: bash tools/wire_model.sh [build dir, default build]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
bench="$build/tools/signvote-bench"
[ -x "$bench" ] || { echo "build $bench first (cmake --build $build)" >&2; exit 1; }
base="bench/results/$(date -u +%Y-%m-%d)-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)-wire"
mkdir -p bench/results
for spec in "8 nvlink8,ndr,100gbe" "16 ndr,100gbe"; do
  read -r W links <<<"$spec"
  {
    echo "# $bench --mode wire -r $W --links $links --counts 1M,4M,16M,64M,128M,256M" \
         "at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u)"
    "$bench" --mode wire -r "$W" --links "$links" --counts 1M,4M,16M,64M,128M,256M \
      --json "$base-w$W.json"
  } | tee "$base-w$W.txt"
done
python3 tools/wire_report.py docs/benchmarks.md docs/benchmarks-wire.png "$base-w8.json" \
  "$base-w16.json"
