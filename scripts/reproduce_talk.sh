#!/usr/bin/env bash
# Reproduce the talk's claims on this machine: every talk config, then one report.
#   scripts/reproduce_talk.sh            full size (hours on CPU; see README for run times)
#   scripts/reproduce_talk.sh --smoke    the same chain at smoke sizes (minutes; run in CI)
# Real data: read from $RNNBENCH_SHARED_DATA (default ../shared/data) when that folder exists,
# otherwise from copies registered with `rnnbench data download NAME [--from FILE]`.
# Finished runs are skipped, so an interrupted reproduction resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=""
[ "${1:-}" = "--smoke" ] && SMOKE="--smoke"
OUT="${RNNBENCH_OUT:-runs/talk${SMOKE:+-smoke}}"
BIN="${RNNBENCH_BIN:-.venv/bin/rnnbench}"
SHARED="${RNNBENCH_SHARED_DATA:-../shared/data}"
path() { if [ -e "$SHARED/$1" ]; then echo "--set data.path=$SHARED/$1"; fi; }
run() { echo "+ $*" >&2; "$@"; }

run $BIN compare configs/quickstart.yaml $SMOKE --set experiment.output_dir="$OUT"
run $BIN compare configs/imdb.yaml $SMOKE --set experiment.output_dir="$OUT" $(path aclImdb_v1.tar.gz)
run $BIN compare configs/amazon-helpfulness.yaml $SMOKE --set experiment.output_dir="$OUT" \
    $(path amazon-musical-instruments-5core/Musical_instruments_reviews.csv)
for fig in configs/fig*.yaml; do
  extra=""
  grep -q "dataset: imdb" "$fig" && extra="$(path aclImdb_v1.tar.gz)"
  run $BIN sweep "$fig" $SMOKE --set experiment.output_dir="$OUT" $extra
done
# the embedding map of the largest IMDB GRU run (seed 0)
rnn_run=$(ls -d "$OUT"/imdb/runs/rnn-n*-s0-* | sort -V | tail -n 1)
top=1000; [ -n "$SMOKE" ] && top=50
run $BIN embed "$rnn_run" --top $top
run $BIN report "$OUT"/quickstart "$OUT"/imdb "$OUT"/amazon-helpfulness "$OUT"/fig* "$rnn_run" -o "$OUT/report.html"
echo "report: $OUT/report.html"
