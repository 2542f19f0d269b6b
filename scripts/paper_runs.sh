#!/usr/bin/env bash
# Issue #9 (tracker #13): the paper-profile runs that complete Table 1's MNIST columns, in two resumable lanes of one
# torch thread each. Every run is stored atomically and skipped once stored, so killing and restarting this script
# loses at most the run in progress of each lane. Run it detached, logs outside the repository:
#   nohup bash scripts/paper_runs.sh /abs/path/to/outputs/paper > /tmp/paper_runs.log 2>&1 &
# The numeric path is pinned as in the test lanes (dhclib.numerics.PINNED_ENV) so the runs are reproducible on any
# x86-64 CPU with AVX2; each stored run records its numeric environment.
set -u
out=${1:?usage: paper_runs.sh OUT_DIR [PYTHON]}
py=${2:-python3}
export ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() { "$py" -m dhclib run --profile paper --out "$out" --no-progress "$@" || echo "FAILED: $*"; }

lane() {  # one benchmark; seed by seed so that every DHP variant gets its baseline's paired run early
  local bench=$1
  for seed in 1 2 3 4 5 6 7 8 9; do
    [ "$seed" -ge 2 ] && run --benchmark "$bench" --method all --seeds "$seed"
    run --benchmark "$bench" --method ewc,dhp+ewc --seeds "$seed" --set fisher_mode=batch
    if [ "$seed" -eq 2 ]; then  # the remedies of the runaway trace, seeds 0-2 (issue item 4)
      run --benchmark "$bench" --method dhp,dhp+mas --seeds 0-2 --set eta_clamp=true
      run --benchmark "$bench" --method dhp,dhp+mas --seeds 0-2 --set eta_grad_horizon=full
    fi
  done
}

(
  # Split MNIST's finetuning gap (issue item 5): Adam instead of SGD; short runs first.
  run --benchmark split_mnist --method finetune,dhp --seeds 0-9 --set optimizer=adam --set lr=0.001
  lane permuted_mnist
) 2>&1 | sed -u 's/^/[permuted] /' &
lane imbalanced_permuted_mnist 2>&1 | sed -u 's/^/[imbalanced] /' &
wait
