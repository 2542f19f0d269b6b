#!/usr/bin/env bash
# Issue #9 (tracker #13): the paper-profile runs that complete Table 1's MNIST columns, in two resumable lanes of one
# torch thread each. Every run is stored atomically and skipped once stored, so killing and restarting this script
# loses at most the run in progress of each lane. Run it detached, logs outside the repository:
#   nohup bash scripts/paper_runs.sh /abs/path/to/outputs/paper [PYTHON] > /tmp/paper_runs.log 2>&1 &
# Both lanes work through the same list, from its two ends: each run is claimed before it trains
# (dhclib/runs/claims.py), so no run is trained twice and each lane skips what the other has stored or recorded as
# diverged. Going through Table 1's seeds in opposite orders, the lanes meet once, in the middle; walking one order
# together, one lane idled at the end of every command, waiting for the run the other was finishing. A killed lane's
# claims are taken over at once by a restarted one (their holder is gone from this host).
# The numeric path is pinned as in the test lanes (scripts/lanes_common.sh).
set -u
out=${1:?usage: paper_runs.sh OUT_DIR [PYTHON]}
py=${2:-python3}
source "$(dirname "$0")/lanes_common.sh"

lane() {  # every run of the list, Table 1's seeds in the order given; stored runs are read back in a second
  # Split MNIST's finetuning gap (issue item 5): Adam instead of SGD.
  run --benchmark split_mnist --method finetune,dhp --seeds 0-9 --set optimizer=adam --set lr=0.001
  # The remedies of the runaway trace, seeds 0-2 (issue item 4).
  both --method dhp,dhp+mas --seeds 0-2 --set eta_clamp=true
  both --method dhp,dhp+mas --seeds 0-2 --set eta_grad_horizon=full
  # Table 1 seed by seed, so that every DHP variant gets its baseline's paired run early; the labelled Online EWC
  # rows (the mini-batch Fisher, where the paper's lambda diverges) beside each seed.
  for seed in "$@"; do
    both --method all --seeds "$seed"
    both --method ewc,dhp+ewc --seeds "$seed" --set fisher_mode=batch
  done
}

two_lanes 0 1 2 3 4 5 6 7 8 9
