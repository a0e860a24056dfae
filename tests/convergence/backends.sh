#!/usr/bin/env bash
# SV_BACKEND_CUDA inside a training loop (GPU lane): signvote-train with --backend cuda must
# print exactly the host backend's CSV for every scheme, since the exchanges give the same
# bits and so the same models, losses and accuracies. Exits 4 (skipped) without a GPU.
#   backends.sh TRAINER [DEVICE-FLAGS]   (default --backend cuda; the emulated device's trainer
#                                         also runs --backend cuda --model-device cuda, whose
#                                         twin model gives the host model's bits)
set -euo pipefail
train="$1"
read -r -a device <<< "${2:---backend cuda}"
# SIGNVOTE_TRAIN_STEPS: fewer steps where each costs more (CI's sanitizer build).
common=(--steps "${SIGNVOTE_TRAIN_STEPS:-30}" --eval-every 10 --ranks 4 --split iid --no-header)
. "$(dirname "$0")/cases.sh"
for c in "${cases[@]}"; do
  # shellcheck disable=SC2086 # each case is a list of flags
  host=$("$train" "${common[@]}" $c)
  set +e
  # shellcheck disable=SC2086
  dev=$("$train" "${common[@]}" $c "${device[@]}")
  rc=$?
  set -e
  if [ "$rc" = 4 ]; then echo "no GPU: skipped"; exit 4; fi
  if [ "$rc" != 0 ]; then echo "the CUDA run failed (exit $rc): $c"; exit 1; fi
  if [ "$host" != "$dev" ]; then
    echo "the CSVs differ: $c"
    diff <(echo "$host") <(echo "$dev") || true
    exit 1
  fi
  echo "same CSV on both backends: $c"
done
