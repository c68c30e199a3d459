#!/usr/bin/env bash
# The GPU check, for a session lent an H100/H200 (docs/benchmarks.md, "GPU check"): a short
# `run.py trainer=gpu` with its steps/s per stage, skipped / overflow step counts and GPU
# utilisation, then `make bench` on CUDA. Every section has its own time limit and a failed
# section does not stop the next one, so one call brings back whatever could be measured.
#
#   bash benchmarks/gpu_check.sh                # writes gpu_check/ (or $OUT): 8 small files
#   WHEELS=.whl bash benchmarks/gpu_check.sh    # first installs the wheels the GPU machine lacks
#                                               # (hydra-core, omegaconf, antlr4, albumentations…)
# Knobs: QUICK=1 (bench --quick), EPOCHS (default 6, every stage), ORDER (default NKS), PYTHON (default python3),
# DATA_TIMEOUT / RUN_TIMEOUT / BENCH_TIMEOUT / COMPILE_TIMEOUT (seconds; together under 9 minutes),
# RUN_OVERRIDES (extra run.py overrides), BENCH_ARGS / COMPILE_ARGS (extra benchmark arguments),
# SKIP_BENCH=1, SKIP_RUN=1, SKIP_COMPILE=1, WORK (shared data and wheels) + RUN_DIR (one per call); a CPU dry run of the script itself: TRAINER=cpu BENCH_DEVICE=cpu
# BENCH_ARGS=--tiny COMPILE_ARGS="--backbone resnet18 --size 32 64 --batches 1" EPOCHS=1.
set -uo pipefail
OUT=${OUT:-gpu_check}
PY=${PYTHON:-python3}
WORK=${WORK:-$(mktemp -d)}  # the run's outputs (checkpoints…) stay out of $OUT
RUN_DIR=${RUN_DIR:-$WORK/run}  # calls sharing $WORK (its data and wheels) need one each
mkdir -p "$OUT"
if [ -n "${WHEELS:-}" ] && [ ! -d "$WORK/site" ]; then  # once per $WORK: several calls can share it
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" "$WHEELS"/*.whl || exit 1
fi
[ -n "${WHEELS:-}" ] && export PYTHONPATH="$WORK/site"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" LMD_ROOT="$PWD" HF_HUB_OFFLINE=1 \
  WANDB_MODE=disabled PYTHONUNBUFFERED=1 LMD_DATA_DIR="$WORK/data" LMD_INDEX_DIR="$WORK/data_index"
section() { echo "== $1 ($(date +%T))" | tee -a "$OUT/gpu.txt"; }

section "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$OUT/gpu.txt"
"$PY" -c "import lifelong_monodepth, torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__,
'cuda', torch.cuda.is_available(), 'bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported())" \
  2>&1 | tee -a "$OUT/gpu.txt"

if [ -z "${SKIP_RUN:-}" ]; then
  # 1. The synthetic benchmark (one process per core), then a run of the default sequence on the GPU
  #    preset (bf16-mixed, channels_last, cuDNN benchmark, loader workers), GPU utilisation sampled.
  section "synthetic data"
  timeout "${DATA_TIMEOUT:-90}" "$PY" -m lifelong_monodepth.data.synthetic --workers "$(nproc)" \
    2>&1 | tail -3 | tee -a "$OUT/gpu.txt"
  section "run.py trainer=${TRAINER:-gpu} order=${ORDER:-NKS} trainer.max_epochs=${EPOCHS:-6}"
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -lms 500 \
    >"$OUT/util.txt" 2>/dev/null &
  SMI=$!
  # shellcheck disable=SC2086
  timeout "${RUN_TIMEOUT:-180}" "$PY" run.py trainer="${TRAINER:-gpu}" order="${ORDER:-NKS}" \
    trainer.max_epochs="${EPOCHS:-6}" stage_schedule.epochs_from_stage=null logger=csv callbacks=none \
    hydra.run.dir="$RUN_DIR" \
    ${RUN_OVERRIDES:-} >"$OUT/run.log" 2>&1
  echo "run exit status $?" | tee -a "$OUT/gpu.txt"
  kill "$SMI" 2>/dev/null
  # A run stopped by its time limit still has the timing of the stages it finished.
  cp "$RUN_DIR/results/summary.json" "$OUT/summary.json" 2>/dev/null \
    || cp "$RUN_DIR/results/timing.json" "$OUT/summary.json" 2>/dev/null

  # 2. Steps/s per stage (overall and median step) from the timing block, skipped and overflow steps,
  #    GPU utilisation during the run.
  "$PY" - "$OUT" "$RUN_DIR" <<'PYEOF' 2>&1 | tee "$OUT/summary.txt"
import csv, json, statistics, sys
from pathlib import Path
out, run = Path(sys.argv[1]), Path(sys.argv[2])
log = (out / "run.log").read_text(errors="replace")
try:
    summary = json.loads((out / "summary.json").read_text())
    timing = summary.get("timing", summary)  # timing.json alone when the run was stopped early
except (OSError, KeyError, ValueError) as error:
    timing = {}
    print(f"no timing block ({error})")
print("| stage | steps | steps/s (whole fit) | median step ms | steps/s (median) | samples/s | train s | eval s |")
print("|---|---|---|---|---|---|---|---|")
for stage, t in timing.items():
    median = t.get("median_step_seconds")
    print(f"| {stage} | {t['train_steps']} | {t['train_steps'] / t['train_seconds']:.1f} "
          f"| {1000 * median:.1f} | {1 / median:.1f} | {t['samples_per_second']:.0f} "
          f"| {t['train_seconds']:.1f} | {t.get('eval_seconds', float('nan')):.1f} |")
overflow = 0
for metrics in run.rglob("metrics.csv"):
    rows = list(csv.DictReader(metrics.open()))
    values = [float(r["train/scaler_overflow_steps"]) for r in rows if r.get("train/scaler_overflow_steps")]
    overflow += int(max(values)) if values else 0
print(f"skipped (bad) steps: {log.count('Skipping step')}; loss-scaler overflow steps: {overflow}")
util = []
for line in (out / "util.txt").read_text().splitlines() if (out / "util.txt").is_file() else []:
    parts = [p.strip() for p in line.split(",")]
    if len(parts) >= 2 and parts[1].split()[0].isdigit():
        util.append(int(parts[1].split()[0]))
if util:
    busy = [u for u in util if u > 0]
    print(f"GPU utilisation over the run: mean {statistics.mean(util):.0f} %, "
          f"median while busy {statistics.median(busy) if busy else 0:.0f} % ({len(util)} samples)")
PYEOF
fi

if [ -z "${SKIP_BENCH:-}" ]; then
  # 3. make bench on CUDA (warm-up 25, median of 50; paper size 224x320 for inference).
  #    Compilation is measured in section 4, line by line, so that a slow compiler costs no figure.
  section "make bench (${BENCH_DEVICE:-cuda})"
  # shellcheck disable=SC2086
  timeout "${BENCH_TIMEOUT:-150}" "$PY" benchmarks/run_benchmarks.py --device "${BENCH_DEVICE:-cuda}" \
    ${QUICK:+--quick} --no-compile --json "$OUT/bench.json" ${BENCH_ARGS:-} 2>&1 \
    | grep -v "^💡\|Tip" >"$OUT/bench.txt"
  echo "bench exit status ${PIPESTATUS[0]}" | tee -a "$OUT/gpu.txt"
  tail -30 "$OUT/bench.txt"
  # 4. The paper network at batch 1 and 32: layout, bf16, compiled with CUDA graphs (reduce-overhead).
  [ -n "${SKIP_COMPILE:-}" ] && { section "done"; exit 0; }
  section "compiled inference"
  # shellcheck disable=SC2086
  timeout "${COMPILE_TIMEOUT:-120}" "$PY" benchmarks/compiled_inference.py --device "${BENCH_DEVICE:-cuda}" \
    ${QUICK:+--quick} ${COMPILE_ARGS:-} 2>&1 | grep -v "^💡\|Tip\|Warning\|warn" | tee "$OUT/compiled.txt"
fi
section "done"
