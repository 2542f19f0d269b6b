#!/usr/bin/env bash
# Issue #27: the paper-profile runs that test why DHP Softmax + MAS collapses, and Table 4 on the permuted
# benchmarks, in two resumable lanes of one torch thread each (as scripts/paper_runs.sh, whose notes apply: every run
# is stored atomically and skipped once stored or recorded as diverged; each run is claimed before it trains, so the
# two lanes, walking the seeds from opposite ends, never train one run twice). Run it detached, logs outside the
# repository:
#   nohup bash scripts/collapse_runs.sh /abs/path/to/outputs/paper [PYTHON] > /tmp/collapse_runs.log 2>&1 &
# A killed lane's claims are taken over at once by a restarted one (their holder is gone from this host).
# In the issue's order, seeds paired with the stored Table 1 runs:
#   E1       Permuted and Imbalanced, seeds 0-4: dhp+mas with MAS's importance on the slow-only logits;
#            mas and dhp+mas with the mini-batch MAS estimator (30 runs)
#   Table 4  Permuted and Imbalanced, seeds 0-4: dhp with eta_init 0.1, 0.01, 0.0005, 0.0001 (40 runs; 0.001 is
#            Table 1's dhp)
#   E2       Permuted, seeds 0-2: finetune, dhp, mas, dhp+mas stopped early on the validation loss (12 runs)
#   E3       Split MNIST, seeds 0-9: finetune, dhp, si, dhp+si with the loss over all ten output units (40 runs)
set -u
out=${1:?usage: collapse_runs.sh OUT_DIR [PYTHON]}
py=${2:-python3}
source "$(dirname "$0")/lanes_common.sh"

lane() {  # the four blocks, each over the seeds in the order given
  for seed in "$@"; do
    both --method dhp+mas --seeds "$seed" --set importance_logits=slow
    both --method mas,dhp+mas --seeds "$seed" --set mas_mode=batch
  done
  for seed in "$@"; do
    for eta in 0.1 0.01 0.0005 0.0001; do
      both --method dhp --seeds "$seed" --set eta_init="$eta"
    done
  done
  for seed in "$@"; do
    if [ "$seed" -le 2 ]; then
      run --benchmark permuted_mnist --method finetune,dhp,mas,dhp+mas --seeds "$seed" --set select_metric=loss
    fi
  done
  for seed in "$@"; do
    run --benchmark split_mnist --method finetune,dhp,si,dhp+si --seeds "$seed,$((seed + 5))" --set loss_units=all
  done
}

two_lanes 0 1 2 3 4
