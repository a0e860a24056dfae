#!/usr/bin/env bash
# The recorded convergence runs of docs/convergence.md (issue 7): signvote-train on
# Fashion-MNIST, non-IID (one label per rank) and IID, 10 ranks, batch 64, 1,500 steps, 3 seeds,
# every scheme (dgs with and without downlink compression, liec with tau = 32 and 8), and
# adaptive K against fixed K at the same total K (window 100 x Kbar = 797), and dense momentum
# SGD (the trainer's heavy ball, DGS's lr and momentum) as DGS's baseline (DGS also at 5 % and
# 10 % density), and the top-K schemes
# with one bucket per parameter tensor (the seeds' per-layer selection) beside one per model,
# and DGS's asynchronous parameter server (10 workers; each push is applied whole, so its lr is
# DGS's 0.03 divided by the 10 workers).
# Writes the raw CSV to bench/results/<date>-<commit>-convergence.csv, then
# docs/convergence.md (tables) and docs/convergence-noniid{,-wire}.png (accuracy vs uplink and
# wire bits).
# Usage: bash tools/convergence.sh [build dir, default build]
# ONLY=<extended regex>: run only the methods whose flags match; the report then also reads the
# earlier raw CSVs named in EARLIER (space-separated), so a partial run adds rows to them.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
train="$build/tools/signvote-train"
[ -x "$train" ] || { echo "build $train first (cmake --build $build)" >&2; exit 1; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
out="bench/results/$(date -u +%Y-%m-%d)-$commit-convergence.csv"
mkdir -p bench/results
methods=(
  "--scheme s3gd_mv --lr 1e-3 --density 0.01 --rho 1"
  "--scheme s3gd_mv --lr 1e-3 --density 0.01 --rho 0"
  "--scheme s3gd_mv --lr 1e-3 --density 0.01 --rho 1 --adaptive-k --kmin 80 --kwindow 100 --kbudget 79700"
  "--scheme signsgd_mv --lr 1e-3"
  "--scheme ef_sign --lr 0.1"
  "--scheme topk_ef --lr 0.1 --density 0.01"
  "--scheme dgs --lr 0.03 --density 0.01 --momentum 0.9"
  "--scheme dgs --lr 0.03 --density 0.01 --momentum 0.9 --down-density 0.01"
  "--scheme liec --lr 0.1 --period 32"
  "--scheme liec --lr 0.1 --period 8"
  "--scheme dense --lr 0.1"
  "--scheme dense --lr 0.03 --sgd-momentum 0.9"
  "--scheme s3gd_mv --lr 1e-3 --density 0.01 --rho 1 --buckets tensor"
  "--scheme topk_ef --lr 0.1 --density 0.01 --buckets tensor"
  "--scheme dgs --lr 0.03 --density 0.01 --momentum 0.9 --buckets tensor"
  "--scheme dgs --lr 0.03 --density 0.05 --momentum 0.9"
  "--scheme dgs --lr 0.03 --density 0.1 --momentum 0.9"
  "--scheme dgs_async --lr 0.003 --density 0.01 --momentum 0.9"
  "--scheme dgs_async --lr 0.003 --density 0.01 --momentum 0.9 --down-density 0.01"
)
{
  echo "# signvote-train convergence runs at commit $commit, $(date -u); $(nproc) cores, host backend"
  "$train" --steps 1 --eval-every 1 --seed 0 | head -1
  for split in noniid iid; do
    for m in "${methods[@]}"; do
      [[ -z "${ONLY:-}" || "$m" =~ $ONLY ]] || continue
      for seed in 1 2 3; do
        # shellcheck disable=SC2086
        "$train" $m --split "$split" --labels 1 --ranks 10 --batch 64 --steps 1500 \
          --eval-every 100 --seed "$seed" --no-header
      done
    done
  done
} | tee "$out"
# shellcheck disable=SC2086
python3 tools/convergence_report.py docs/convergence.md docs/convergence-noniid.png \
  ${EARLIER:-} "$out"
