#!/usr/bin/env bash
# The GPU check, for a session lent an H100/H200 (docs/benchmarks.md, "GPU check"): `make bench` on
# CUDA, then a short `run.py trainer=gpu` with its steps/s per stage and skipped / overflow step counts.
#
#   bash benchmarks/gpu_check.sh                # writes gpu_check/ (or $OUT)
#   WHEELS=wheels/ bash benchmarks/gpu_check.sh # first installs the wheels the GPU machine lacks
#                                               # (hydra-core, omegaconf, antlr4, albumentations, wandb…)
# Knobs: QUICK=1 (bench --quick), EPOCHS (default 3), ORDER (default NKS), PYTHON.
set -euo pipefail
OUT=${OUT:-gpu_check}
PY=${PYTHON:-python}
mkdir -p "$OUT"
if [ -n "${WHEELS:-}" ]; then
  "$PY" -m pip install -q --no-index --find-links "$WHEELS" hydra-core omegaconf albumentations wandb
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" LMD_ROOT="$PWD" HF_HUB_OFFLINE=1 WANDB_MODE=disabled
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, 'bf16', torch.cuda.is_bf16_supported())" | tee -a "$OUT/gpu.txt"

# 1. make bench on CUDA (warm-up 25, median of 50; paper size 224x320 for inference).
"$PY" benchmarks/run_benchmarks.py --device cuda ${QUICK:+--quick} --json "$OUT/bench.json" 2>&1 \
  | grep -v "^💡\|Tip" | tee "$OUT/bench.txt"

# 2. A short run of the default sequence on the GPU preset (bf16-mixed, channels_last, workers).
"$PY" run.py trainer=gpu order="${ORDER:-NKS}" trainer.max_epochs="${EPOCHS:-3}" logger=csv \
  callbacks=none hydra.run.dir="$OUT/run" 2>&1 | tee "$OUT/run.log"

# 3. Steps/s and samples/s per stage (results/summary.json "timing"), skipped and overflow steps.
"$PY" - "$OUT" <<'PYEOF' | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
timing = json.loads((out / "run" / "results" / "summary.json").read_text())["timing"]
log = (out / "run.log").read_text()
print("| stage | steps/s | samples/s | train s | eval s |")
print("|---|---|---|---|---|")
for stage, t in timing.items():
    print(f"| {stage} | {t['train_steps'] / t['train_seconds']:.1f} | {t['samples_per_second']:.0f} "
          f"| {t['train_seconds']:.1f} | {t['eval_seconds']:.1f} |")
overflow = 0
for metrics in (out / "run" / "csv").rglob("metrics.csv"):
    import csv
    rows = list(csv.DictReader(metrics.open()))
    values = [float(r["train/scaler_overflow_steps"]) for r in rows if r.get("train/scaler_overflow_steps")]
    overflow += int(max(values)) if values else 0
print(f"skipped (bad) steps: {log.count('Skipping step')}; loss-scaler overflow steps: {overflow}")
bench = json.loads((out / "bench.json").read_text())
print(f"lightning_over_hand {bench['lightning_over_hand']:.3f}, stage3_over_stage1 {bench['stage3_over_stage1']:.2f}")
PYEOF
