#!/usr/bin/env bash
# One call on a lent GPU machine (the device tool; see benchmarks/README.md and the bundled model's
# MODEL_CARD.md for what it produced): install this checkout, benchmark big-lama on CUDA, then train
# the default-model candidates for the minutes that are left, evaluating on the carried eval subset.
#
# Carried (ignored) folder .gpu/: whl/ (efficientnet wheels), train/ (`lama-train assemble-data`
# photographs, shorter side <= 800 px), eval/ (the first 30 items per policy of the eval set).
# Usage there: bash scripts/lent_gpu_session.sh SECONDS   (the call's budget; results under $OUT)
# A rehearsal on a CPU machine: DEVICE=cpu BENCH="--sizes 128 --preset small --precisions fp32" ...
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/lent-gpu-out}
BUDGET=${1:-570}
DEVICE=${DEVICE:-cuda}
BENCH=${BENCH:---precisions fp32 bf16 fp16}
EXTRA=${EXTRA:-}   # more `--set KEY=VALUE` arguments for both runs
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site \
    .gpu/whl/*.whl . >"$OUT/install.log" 2>&1 || { tail -20 "$OUT/install.log"; exit 1; }
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

# 1. big-lama speed on the GPU (random weights; eager fp32 reference vs the fast path)
timeout 240 python3 benchmarks/generator.py --device "$DEVICE" $BENCH --rounds 1 \
    --warmup 2 --repeat 5 2>&1 | tee "$OUT/generator-$DEVICE.txt"
# what is left of the budget, less start-up, the last evaluation, export and copying back
MINUTES=$(python3 -c "print(max(0.5, ($BUDGET - $SECONDS - 100) / 60))")
echo "training for $MINUTES minutes"

# 2. the default-model candidates, side by side on the one GPU: the `small` preset and a wider one
COMMON=(--config small --train-dir .gpu/train --eval-dir .gpu/eval --set trainer.device="$DEVICE"
        --set data.crop_size=256 --set data.batch_size=16 --set data.repeat=50 --set data.num_workers=7
        --set data.eval_max_images=30 --set data.augment.resize_to=256 --set data.augment.resize_to_max=768
        --set data.mask.irregular.max_len=200 --set data.mask.irregular.max_width=100
        --set data.mask.box.margin=10 --set data.mask.box.bbox_min_size=30 --set data.mask.box.bbox_max_size=150
        --set trainer.log_every=50 --set trainer.eval_every=1000 --set trainer.sample_every=1000
        --set trainer.checkpoint_every=1000 --set trainer.keep_checkpoints=20 --set trainer.tensorboard=false
        --set trainer.progress_bar=false --set trainer.max_minutes="$MINUTES" $EXTRA)
lama-train train "${COMMON[@]}" --run-dir /tmp/runs/small >"$OUT/train-small.log" 2>&1 &
lama-train train "${COMMON[@]}" --run-dir /tmp/runs/wide --set generator.ngf=32 --set generator.n_blocks=9 \
    >"$OUT/train-wide.log" 2>&1 &
wait
for run in small wide; do
    tail -3 "$OUT/train-$run.log"
    last=$(ls /tmp/runs/$run/checkpoints/step_*.pt 2>/dev/null | tail -1)
    [ -n "$last" ] && lama-train export "$last" "$OUT/$run.safetensors" --half
    python3 - "$run" <<'PY'
import json, sys
for line in open(f"/tmp/runs/{sys.argv[1]}/metrics.jsonl"):
    r = json.loads(line)
    if r["kind"] == "eval":
        print(sys.argv[1], r["step"], {k: round(v, 3) for k, v in r.items() if k.endswith(("psnr_hole", "ssim_hole"))})
    elif r["kind"] == "train" and r["step"] % 1000 == 0:
        print(sys.argv[1], r["step"], "s", r.get("seconds"), "gen", round(r.get("gen_total", 0), 3))
PY
done
tar czf "$OUT/runs.tgz" -C /tmp/runs --exclude='*.pt' --exclude='*.safetensors' .
ls -la "$OUT"
