#!/usr/bin/env bash
# `make unit`: the unit tests as N shards at once (pytest --shard I/N, tests/conftest.py), one process each. The
# tests run torch on one thread and spend most of their time in single-threaded Python, so one process uses one
# core; on two cores two shards took 129 s against 186 s for one process (docs/guide.md, "Notebooks").
#   scripts/test_shards.sh PY [N] [pytest arguments...]
set -u
py=${1:?usage: test_shards.sh PY [N] [pytest arguments...]}
n=${2:-2}
shift $(($# >= 2 ? 2 : 1))
case $n in ''|*[!0-9]*|0) echo "test_shards.sh: N must be an integer >= 1, got '$n'" >&2; exit 2 ;; esac
# one thread in every process the tests start too (notebook kernels, workers): two shards of two-thread torch
# processes on two cores make each step many times slower
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ "$n" -eq 1 ]; then exec "$py" -m pytest tests "$@"; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pids=()
for i in $(seq 1 "$n"); do
  (
    set -o pipefail
    "$py" -m pytest tests --shard "$i/$n" --basetemp "$tmp/shard$i" -p no:cacheprovider "$@" 2>&1 |
      sed -u "s/^/[unit $i\/$n] /"
  ) &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
