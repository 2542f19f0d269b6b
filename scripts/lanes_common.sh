# Sourced by the scripts of background paper-profile runs (paper_runs.sh, collapse_runs.sh), after they set
# $out (the result store) and $py (the Python): the pinned numeric path of the test lanes (dhclib.numerics.PINNED_ENV,
# so the runs are reproducible on any x86-64 CPU with AVX2; each stored run records its numeric environment), one
# torch thread per lane, and the commands a lane list is written in. `two_lanes SEEDS...` runs the script's
# `lane` function twice, over the seeds in the order given and reversed: each run is claimed before it trains
# (dhclib/runs/claims.py), so the lanes meet once, in the middle, and no run is trained twice.
export ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() { "$py" -m dhclib run --profile paper --out "$out" --no-progress "$@" || echo "FAILED: $*"; }
both() { run --benchmark permuted_mnist,imbalanced_permuted_mnist "$@"; }

two_lanes() {
  local reversed=()
  for seed in "$@"; do reversed=("$seed" "${reversed[@]}"); done
  lane "$@" 2>&1 | sed -u 's/^/[lane 1] /' &
  sleep 30  # the first lane claims its first run before the second looks
  lane "${reversed[@]}" 2>&1 | sed -u 's/^/[lane 2] /' &
  wait
}
