#!/usr/bin/env bash
# Runs the notebooks in parallel lanes (each argument after PY is one lane: notebook names, run in order), one
# process per lane with LANE_THREADS torch threads (default 1). One thread makes every number independent of the
# machine's core count, so the tables committed by `make notebooks` are the ones `make nbval` recomputes on any CPU;
# two single-thread lanes also finish sooner on two cores than one two-thread process (measured: README).
#   lanes.sh nbval   PY "01_a 03_b" "02_c"  # nbval: compare the NBVAL_CHECK_OUTPUT cells (pytest --nbval-lax)
#   lanes.sh execute PY "01_a 03_b" "02_c"  # papermill: re-execute in place, or into $NB_OUT/<name>/<name>.ipynb
#                                           # when NB_OUT is set; $NB_ARGS are passed to papermill (e.g. -p ...)
set -u
mode=$1 py=$2
shift 2
case $mode in nbval|execute) ;; *) echo "lanes.sh: mode must be nbval or execute, got '$mode'" >&2; exit 2 ;; esac
export OMP_NUM_THREADS=${LANE_THREADS:-1} MKL_NUM_THREADS=${LANE_THREADS:-1}
# text progress bars (papermill logs show a kernel's stderr, not a widget's updates; dhclib/_progress.py)
export DHC_PROGRESS=${DHC_PROGRESS:-text}
# The numeric path, pinned where the platform allows (dhclib.numerics.PINNED_ENV; README "Reproducibility"): on
# x86-64 with AVX2, ATen's AVX2 kernels and MKL's AVX2 code path, whether or not the CPU also has AVX-512. A value
# already set wins (benchmarks/numeric_spread.py measures the other paths). Never set for the speed benchmarks.
if [ "$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
  export ATEN_CPU_CAPABILITY=${ATEN_CPU_CAPABILITY:-avx2} MKL_CBWR=${MKL_CBWR:-AVX2}
fi
# Notebooks that need data a workplace may lack are skipped, with the reason, when it cannot be read (or downloaded).
# NB_NEEDS adds "notebook:benchmark" pairs (make reproduce PROFILE=paper: 04 needs all five of its datasets).
needs() {
  case $1 in 06_split_cifar) echo split_cifar10_100; return ;; esac
  for pair in ${NB_NEEDS:-}; do [ "${pair%%:*}" = "$1" ] && echo "${pair#*:}"; done
}
pids=()
lane=0
for names in "$@"; do
  lane=$((lane + 1))
  (
    set -o pipefail
    (
      for nb in $names; do
        start=$(date +%s)
        bench=$(needs "$nb")
        if [ -n "$bench" ] && ! reason=$("$py" -m dhclib data --check "$bench" 2>&1); then
          echo "== $nb SKIPPED: $(echo "$reason" | tail -n 1)"
          continue
        fi
        echo "== $nb"
        if [ "$mode" = nbval ]; then
          # -v: one line per cell as it passes; a failing notebook does not stop the lane (every one reports)
          "$py" -m pytest -p no:cacheprovider -v --nbval-lax --nbval-current-env "notebooks/$nb.ipynb" \
            || { failed=1; echo "== $nb FAILED"; continue; }
        else
          out="notebooks/$nb.ipynb"
          if [ -n "${NB_OUT:-}" ]; then mkdir -p "$NB_OUT/$nb" && out="$NB_OUT/$nb/$nb.ipynb"; fi
          # NB_ARGS is one list for every notebook: each gets the parameters it declares (scripts/notebook_args.py)
          # shellcheck disable=SC2086
          eval "args=($("$py" scripts/notebook_args.py "notebooks/$nb.ipynb" ${NB_ARGS:-}))" || exit 1
          "$py" -m papermill --cwd notebooks "${args[@]}" "notebooks/$nb.ipynb" "$out" || exit 1
          "$py" scripts/normalize_notebook.py "$out" || exit 1  # no timestamps or progress bars: same run, same bytes
        fi
        echo "== $nb done in $(( $(date +%s) - start )) s"
      done
      exit ${failed:-0}
    ) 2>&1 | sed -u "s/^/[lane $lane] /"
  ) &
  pids+=($!)
done
# A training cell runs for minutes without output under nbval: say every minute how many runs the store holds.
if [ "$mode" = nbval ] && [ -n "${DHC_OUTPUT_ROOT:-}" ]; then
  (
    t0=$(date +%s)
    while sleep 60; do
      n=$(find "$DHC_OUTPUT_ROOT" -path '*/runs/*' -name 'seed*.json' 2>/dev/null | wc -l)
      echo "[progress] $(( ($(date +%s) - t0) / 60 )) min: $n runs trained into the temporary store"
    done
  ) &
  heartbeat=$!
fi
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
[ -n "${heartbeat:-}" ] && kill "$heartbeat" 2>/dev/null
exit $status
