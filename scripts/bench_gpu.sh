#!/usr/bin/env bash
# The GPU figures in one call, for a GPU box lent for minutes (no network there):
#   1. train-step speed of the GRU, LSTM and simple RNN: float32 at batch 64 (the CPU shapes) and bf16 at
#      batch 256/512, each against PyTorch (cuDNN) in the same process;
#   2. what bounds the GRU's step: scripts/bench_profile.py at PROFILE's shapes (default "64:float32
#      512:bfloat16"; "" skips it), both kinds of programs; summaries in $OUT/profile.log, traces in $OUT/profile;
#   3. IMDB (IMDB=compare, the default): configs/imdb.yaml's RNN side in full (5 sizes x 3 seeds), WORKERS
#      (4) runs sharing the GPU, its wall time, and the run folders (no weights) in $OUT/imdb_runs.tgz to
#      unpack into the run store at home; there `compare configs/imdb.yaml --tables-only --set data.path=<a copy
#      of the same tarball>` tables them beside the linear runs (a data file enters the run hash by content);
#      IMDB=variants: instead the talk's GRU at 22.5k, a few variants side by side (VARIANTS); IMDB=none.
#   4. the fastText and Transformer kinds at smoke size on the GPU, the Transformer in bfloat16 through
#      cuDNN's fused attention ($OUT/kinds.log; SKIP_KINDS=1 skips it).
# Usage: RNNBENCH_SHARED_DATA=<folder with aclImdb_v1.tar.gz> OUT=<results folder> bash scripts/bench_gpu.sh
#   (RNNBENCH_SHARED_DATA defaults to ../shared/data)
# RNNBENCH_WHEELS=<folder of wheels>: installed (no network) when the machine's packages fail the smoke check.
# DEADLINE=<seconds>: the whole script's budget; the IMDB runs get what the speed runs leave (less 25 s).
# CHUNKS="16 32" (the default): the GRU's speed at each rnn.chunk (PyTorch timed at the first only; LSTM
#   and simple RNN at the first only). GRU_CONFIGS / CONFIGS / CELLS: the BATCH:DTYPE[:UNROLL] shapes of
#   the GRU, of the other cells, and which other cells ("" for none).
# PROGRAMS=both (the default): the GRU and the other cells timed with per-chunk and per-batch programs
#   (compute.train_programs) in the same rounds, at the first chunk; auto: what training uses on the GPU.
# DRY_RUN=1: tiny shapes, and IMDB at smoke size (--smoke; variants: a 300-example subset), to check the
#   plumbing on a CPU in a few minutes.
set -u
OUT=${OUT:-runs/bench/gpu}
RUNS=${RUNS:-runs/bench/gpu-imdb}
LEARN_SECONDS=${LEARN_SECONDS:-300}
py=${PYTHON:-python3}
IMDB=${IMDB:-compare} WORKERS=${WORKERS:-4}
[ "$WORKERS" -ge 1 ] 2>/dev/null || { echo "WORKERS must be a whole number >= 1, got '$WORKERS'"; exit 2; }
export RNNBENCH_SHARED_DATA=${RNNBENCH_SHARED_DATA:-$PWD/../shared/data}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/rnnbench-jax-cache}
t0=$SECONDS
log() { echo "[$((SECONDS - t0)) s] $*"; }
shapes=(--steps 10) profile_shapes=() learn=() compare=(--gpus-per-run "$($py -c "print(1 / $WORKERS)")")
gru_configs=(64:float32 64:float32:8 256:bfloat16 512:bfloat16 512:bfloat16:8) configs=(64:float32 256:bfloat16 512:bfloat16)
[ -n "${GRU_CONFIGS:-}" ] && read -r -a gru_configs <<<"$GRU_CONFIGS"
[ -n "${CONFIGS:-}" ] && read -r -a configs <<<"$CONFIGS"
read -r -a cells <<<"${CELLS-lstm simple}"
if [ -n "${DRY_RUN:-}" ]; then
  shapes=(--steps 2 --embed 16 --hidden 32 --tokens 20) profile_shapes=(--embed 16 --hidden 32 --tokens 20)
  PROFILE=${PROFILE-8:float32} gru_configs=(8:float32 8:bfloat16:4) configs=(8:float32)
  learn=(--size 300 --set rnn.epochs=1 --set rnn.embed_dim=16 --set rnn.hidden_dim=16 --set data.val_max=100)
  compare=(--smoke --gpus-per-run 0)  # a CPU has no GPU to share
fi

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  $py -c "import sys, jax, flax, optax, orbax.checkpoint as o, sklearn; print(sys.version.split()[0], 'jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, 'orbax', o.__version__, 'sklearn', sklearn.__version__, jax.devices())"
} 2>&1 | tee "$OUT/env.txt"

smoke() { timeout 240 $py scripts/bench_rnn.py --embed 8 --hidden 16 --tokens 8 --steps 1 --config 4:float32 --no-torch \
  --programs both >/dev/null; }
log "smoke check"
if ! smoke; then
  [ -d "${RNNBENCH_WHEELS:-}" ] || { log "smoke check failed and no RNNBENCH_WHEELS to fall back on"; exit 1; }
  log "smoke check failed with the machine's packages: installing $RNNBENCH_WHEELS"
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/rnnbench-site \
    "$RNNBENCH_WHEELS"/*.whl || exit 1
  export PYTHONPATH=$PYTHONPATH:/tmp/rnnbench-site
  $py -c "import flax, optax; print('now flax', flax.__version__, 'optax', optax.__version__)" | tee -a "$OUT/env.txt"
  smoke || { log "smoke check failed again"; exit 1; }
fi

log "speed"
read -r -a chunks <<<"${CHUNKS:-16 32}"
[ -z "${SKIP_SPEED:-}" ] && { torch=() programs=(--programs "${PROGRAMS:-both}")
  for chunk in "${chunks[@]}"; do
    timeout 240 $py scripts/bench_rnn.py --cell gru --chunk "$chunk" "${shapes[@]}" --config "${gru_configs[@]}" \
      "${torch[@]}" "${programs[@]}" 2>&1
    torch=(--no-torch) programs=(--programs per-chunk)  # per-batch programs do not depend on the chunk
  done
  for cell in "${cells[@]}"; do
    timeout 160 $py scripts/bench_rnn.py --cell $cell --chunk "${chunks[0]}" "${shapes[@]}" --config "${configs[@]}" \
      --programs "${PROGRAMS:-both}" 2>&1
  done
} | tee "$OUT/speed.log"

read -r -a profile <<<"${PROFILE-64:float32 512:bfloat16}"
if [ "${#profile[@]}" -gt 0 ]; then
  log "profile: ${profile[*]}"
  timeout 240 $py scripts/bench_profile.py --cell gru "${profile_shapes[@]}" --config "${profile[@]}" --programs both \
    --out "$OUT/profile" 2>&1 | tee "$OUT/profile.log" | grep -v '^{'
  find "$OUT/profile" \( -name '*.xplane.pb' -o -name '*.trace.json.gz' \) -delete 2>/dev/null  # Perfetto's stay
fi

if [ -z "${SKIP_KINDS:-}" ]; then  # the Transformer's cuDNN attention has never run on a GPU: a smoke compare
  log "kinds: fastText and the Transformer (bfloat16, cuDNN attention) on the quickstart at smoke size"
  timeout 180 $py -m rnnbench compare configs/quickstart.yaml --smoke --models fasttext,transformer \
    --set transformer.dtype=bfloat16 --set transformer.attention=cudnn --set experiment.output_dir="$OUT/kinds" \
    2>&1 | tail -n 25 | tee "$OUT/kinds.log"
  log "kinds: exit ${PIPESTATUS[0]}"
fi

[ -n "${DEADLINE:-}" ] && LEARN_SECONDS=$(( DEADLINE - (SECONDS - t0) - 25 ))
if [ "$LEARN_SECONDS" -lt 30 ] && [ "$IMDB" != none ]; then  # (timeout 0 would mean no limit at all)
  log "IMDB skipped: ${LEARN_SECONDS}s left of DEADLINE"; IMDB=none
fi
if [ "$IMDB" = compare ]; then
  log "IMDB: configs/imdb.yaml, the RNN side, $WORKERS runs sharing the GPU, ${LEARN_SECONDS}s at most"
  started=$SECONDS
  timeout "$LEARN_SECONDS" $py -m rnnbench.cli compare configs/imdb.yaml --models rnn --workers "$WORKERS" "${compare[@]}" \
    --set "experiment.output_dir=$RUNS" --set "data.path=$RNNBENCH_SHARED_DATA/aclImdb_v1.tar.gz" >"$OUT/imdb_compare.log" 2>&1
  log "IMDB compare: exit $?, $((SECONDS - started)) s wall time (124: stopped at the deadline; rerun to resume)"
  grep -v '^\[' "$OUT/imdb_compare.log" | tail -n 40
  if [ -d "$RUNS/imdb/runs" ]; then
    tar -C "$RUNS" --exclude=params.npz --exclude=checkpoints -czf "$OUT/imdb_runs.tgz" imdb/runs
    log "run folders: $OUT/imdb_runs.tgz"
  fi
elif [ "$IMDB" = variants ]; then
  log "IMDB: variants side by side, ${LEARN_SECONDS}s each at most"
  variants=(
    ""                                                      # configs/imdb.yaml as it is (input dropout 0.75)
    "seed=1"
    "seed=2"
    "rnn.input_dropout=0"                                   # the talk's training without Passage's dropout
  )
  # VARIANTS: one line per run, of `key=value` overrides (`seed=N` picks the seed), instead of the list above
  [ -n "${VARIANTS:-}" ] && mapfile -t variants <<<"$VARIANTS"
  pids=()
  for i in "${!variants[@]}"; do
    args=(--models rnn --out "$RUNS" "${learn[@]}")
    for kv in ${variants[$i]}; do
      case $kv in seed=*) args+=(--seed "${kv#seed=}") ;; *) args+=(--set "$kv") ;; esac
    done
    { log "start ${variants[$i]:-as configured}"; timeout "$LEARN_SECONDS" $py scripts/bench_rnn_learning.py "${args[@]}"
      log "end (exit $?)"; } >"$OUT/imdb_$i.log" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  log "IMDB done"
  tail -n 2 "$OUT"/imdb_*.log
fi

$py - "$RUNS" "$OUT/imdb_runs.json" <<'PY'
import json, sys
from pathlib import Path
runs = []
for d in sorted({p.parent for p in Path(sys.argv[1]).glob("**/metrics.jsonl")}):
    cfg = (d / "config.yaml").read_text() if (d / "config.yaml").exists() else None
    res = json.loads((d / "result.json").read_text()) if (d / "result.json").exists() else None
    evals = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if '"train"' not in line]
    runs.append({"dir": d.name, "config": cfg, "result": res, "events": evals})
    best = res and res.get("validation")
    print(d.name, "val", best, "test", res and res.get("metrics"), "epochs", [e.get("epoch") for e in evals])
Path(sys.argv[2]).write_text(json.dumps(runs, indent=1))
PY
log "end"
