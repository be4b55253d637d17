#!/usr/bin/env bash
# Compare the pipeline phase of an earlier commit with the working tree, alternately.
#
#   benchmarks/compare.sh REV [ROUNDS] [DB]     # e.g. benchmarks/compare.sh HEAD~5 3 postgresql
#
# A shared machine's speed drifts by a factor of two between sessions, so figures from
# different days do not compare; this runs both sides in one session, alternately.
# REV is checked out into a temporary `git worktree` that uses this checkout's .venv,
# and each side gets a database of its own (GEARTRAIN_BENCH_NAME). Every round prints
# each side's key rows of `python -m benchmarks.run --phases pipeline`; the JSON of each
# run is kept in the printed directory.
set -euo pipefail

rev=${1:?usage: benchmarks/compare.sh REV [ROUNDS] [DB]}
rounds=${2:-3}
db=${3:-postgresql}
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
before="$out/before"

git -C "$here" worktree add --quiet --detach "$before" "$rev"
cleanup() { git -C "$here" worktree remove --force "$before"; }
trap cleanup EXIT
ln -s "$here/.venv" "$before/.venv"

for round in $(seq 1 "$rounds"); do
    for side in before after; do
        dir=$here name=gt_compare_after
        if [[ $side == before ]]; then dir=$before name=gt_compare_before; fi
        (cd "$dir" && GEARTRAIN_BENCH_NAME=$name .venv/bin/python -m benchmarks.run \
            --db "$db" --phases pipeline --out "$out/$side-$round.json") |
            grep -E "from 1st claim|gap p50" | sed "s/^/round $round, $side: /"
    done
done
echo "JSON results: $out"
