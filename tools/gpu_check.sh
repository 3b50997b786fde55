#!/usr/bin/env bash
# The checks a lent GPU runs, in under 8 minutes:
#   bash tools/gpu_check.sh [OUTDIR]          (default work_dirs/gpu_check)
# 1. the tests with CUDA-only branches (pytest, listed below);
# 2. tools/benchmark_training.py on CUDA for the CTR-GCN, HD-GCN and BlockGCN
#    CoCoDiff configs (NTU-60 X-Sub): stage-2 and whole-run cost ratios;
# 3. one CoCoDiff run through stages 0-2 with --amp on the demo data
#    (configs/ctrgcn_cocodiff_demo.py, one epoch a stage).
# OUTDIR gets gpu_check.txt (date, GPU, torch and one line of figures per
# part), gpu_check.log (every part's output) and the benchmarks' JSON.
# Scratch (demo data, the AMP run's work dir, text banks) goes to
# GPU_CHECK_WORK (default OUTDIR/work). Without CUDA every part prints
# "skipped: no CUDA device" and the script exits 0; otherwise it exits 1 if a
# part failed or ran out of its time. Each part has its own timeout (seconds,
# environment: TESTS_TIMEOUT 100, BENCH_TIMEOUT 70 per config, AMP_TIMEOUT
# 110); ROUNDS sets the benchmark rounds (default 5). PYTHON defaults to
# .venv/bin/python when present, else python3.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
OUTDIR=${1:-$ROOT/work_dirs/gpu_check}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
WORK=${GPU_CHECK_WORK:-$OUTDIR/work}
cd "$ROOT"
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    [ -x .venv/bin/python ] && PYTHON=.venv/bin/python
fi
TESTS_TIMEOUT=${TESTS_TIMEOUT:-100}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-70}
AMP_TIMEOUT=${AMP_TIMEOUT:-110}
ROUNDS=${ROUNDS:-5}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore

SUMMARY=$OUTDIR/gpu_check.txt
LOG=$OUTDIR/gpu_check.log
: > "$SUMMARY"
: > "$LOG"
FAILED=0
START=$SECONDS

# A line for the screen and the summary.
note() { echo "$*" | tee -a "$SUMMARY"; }

# run_step NAME TIMEOUT COMMAND...: the command's output goes to the log;
# returns its exit status and notes a failure or a timeout.
run_step() {
    local name=$1 limit=$2 began=$SECONDS rc
    shift 2
    echo "== $name: $*" >> "$LOG"
    timeout --kill-after=10 "$limit" "$@" >> "$LOG" 2>&1
    rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        note "[$name] TIMEOUT after ${limit} s (see $LOG)"
        FAILED=1
    elif [ $rc -ne 0 ]; then
        note "[$name] FAILED (exit $rc, $((SECONDS - began)) s; see $LOG)"
        FAILED=1
    fi
    return $rc
}

note "gpu_check $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -n)"
if command -v nvidia-smi > /dev/null 2>&1; then
    note "gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>&1 |
        paste -sd ';' -)"
else
    note "gpu: none (no nvidia-smi)"
fi
note "$("$PYTHON" - 2>&1 <<'EOF'
import sys

import torch

print(f'torch {torch.__version__} (CUDA build {torch.version.cuda}), '
      f'python {sys.version.split()[0]}, CUDA available: '
      f'{torch.cuda.is_available()}')
EOF
)"
if commit=$(git rev-parse --short HEAD 2>/dev/null); then
    git diff --quiet HEAD 2>/dev/null || commit="$commit with local changes"
    note "commit: $commit"
fi
if "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' \
        > /dev/null 2>&1; then
    CUDA=1
else
    CUDA=0
fi

# 1. Tests whose CUDA branches run only on a GPU machine.
CUDA_TESTS=(
    tests/test_stock_gcn_cocodiff.py::test_stage2_step_on_cuda_with_amp
    tests/test_preflight.py::test_backend_follows_cuda
    tests/test_preflight.py::test_backend_of_shipped_config
    tests/test_preflight.py::test_ddp_wrapper_untouched_with_cuda
    tests/test_runtime.py::test_set_device_is_a_noop_without_cuda
    tests/test_runtime.py::test_allocator_kept_only_without_cuda
    tests/test_runtime.py::test_setup_fills_in_the_device_parts_of_a_config
    tests/test_runtime.py::test_import_applies_only_the_import_fixes_and_setup_is_idempotent
    tests/test_diffusion_math.py::test_buffers_follow_to
    tests/test_text_bank.py::test_embed_device_and_dtype
)
if [ $CUDA -eq 0 ]; then
    note "[tests] skipped: no CUDA device"
else
    began=$SECONDS
    if run_step tests "$TESTS_TIMEOUT" "$PYTHON" -m pytest -q \
            -p no:cacheprovider "${CUDA_TESTS[@]}"; then
        note "[tests] $(tail -1 "$LOG") ($((SECONDS - began)) s)"
    fi
fi

# 2. Training cost on CUDA, fp32 (the paper's Table VI measure).
if [ $CUDA -eq 0 ]; then
    note "[benchmark] skipped: no CUDA device"
else
    for name in ctrgcn hdgcn blockgcn; do
        json=$OUTDIR/bench_${name}.json
        began=$SECONDS
        if run_step "benchmark $name" "$BENCH_TIMEOUT" "$PYTHON" \
                tools/benchmark_training.py \
                "configs/${name}_cocodiff_ntu60_xsub.py" --device cuda \
                --rounds "$ROUNDS" --out "$json" --cfg-options \
                "model.cls_head.text_bank.cache_dir=$WORK/banks"; then
            note "[benchmark $name] $("$PYTHON" - "$json" <<'EOF'
import json
import sys

with open(sys.argv[1]) as file:
    result = json.load(file)
ratio = {name: arm['ratio'] for name, arm in result['arms'].items()}
estimate = result['estimate']
parts = [f"stage 2 x{ratio['stage2']:.2f}"]
if 'stage2_literal' in ratio:
    parts.append(f"paper-literal x{ratio['stage2_literal']:.2f}")
parts.append(f"stage 1 cached x{ratio['stage1_cached']:.3f}")
if 'whole_run' in estimate:
    parts += [f"whole run x{estimate['whole_run']:.2f}",
              f"one epoch of each stage x"
              f"{estimate['per_epoch_both_stages']:.2f}"]
print(f"{', '.join(parts)} of the baseline (baseline "
      f"{result['arms']['baseline']['seconds'] * 1e3:.0f} ms/step, batch "
      f"{result['batch_size']}, {result['frames']} frames, "
      f"{result['rounds']} rounds)")
EOF
            ) ($((SECONDS - began)) s)"
        fi
    done
fi

# 3. CoCoDiff through all stages with mixed precision on the demo data.
if [ $CUDA -eq 0 ]; then
    note "[amp run] skipped: no CUDA device"
else
    run_dir=$WORK/amp_run
    data=$WORK/demo_3d.pkl
    rm -rf "$run_dir"
    began=$SECONDS
    if run_step "amp run" "$AMP_TIMEOUT" bash -c '
            set -e
            [ -f "$2" ] || "$1" tools/data/make_demo_data.py --out "$2"
            "$1" tools/train.py configs/ctrgcn_cocodiff_demo.py --amp \
                --seed 0 --work-dir "$3" --cfg-options \
                train_dataloader.dataset.ann_file="$2" \
                val_dataloader.dataset.ann_file="$2" \
                test_dataloader.dataset.ann_file="$2" \
                train_cfg.stage0.epochs=1 train_cfg.stage1.epochs=1 \
                train_cfg.stage2.epochs=1 train_cfg.val_interval=1 \
                custom_hooks.3.interval=1 \
                model.cls_head.text_bank.encoder=random \
                model.cls_head.text_bank.cache_dir="$4"' \
            _ "$PYTHON" "$data" "$run_dir" "$WORK/banks"; then
        # One line of figures; exit 1 if the run was not what it should be.
        figures=$("$PYTHON" - "$run_dir" <<'EOF'
import glob
import json
import math
import os
import sys

work = sys.argv[1]
times = json.load(open(os.path.join(work, 'stage_times.json')))
# The config the Runner dumped: did --amp reach the optimizer wrapper?
amp = any('AmpOptimWrapper' in open(path).read()
          for path in glob.glob(os.path.join(work, '*.py')))
records = []
for path in glob.glob(os.path.join(work, '*', 'vis_data', 'scalars.json')):
    records += [json.loads(line) for line in open(path) if line.strip()]
train = [r for r in records if 'loss' in r]
finite = all(math.isfinite(v) for r in train for k, v in r.items()
             if k.startswith('loss'))
stage2 = sorted({k for r in train if r.get('epoch') == 3 for k in r
                 if k.startswith('loss')})
top1 = [r['acc/top1'] for r in records if 'acc/top1' in r]
ok = amp and finite and len(times) == 3 and 'loss_gen_cls' in stage2
print(('' if ok else 'CHECK FAILED: ') + f'AmpOptimWrapper: {amp}; '
      + ', '.join(f'{k} {v:.0f} s' for k, v in sorted(times.items()))
      + f"; losses finite: {finite}; stage-2 losses: {' '.join(stage2)}; "
      + 'val top-1 ' + (f'{top1[-1]:.3f}' if top1 else 'none'))
sys.exit(0 if ok else 1)
EOF
        ) || FAILED=1
        note "[amp run] $figures ($((SECONDS - began)) s)"
    fi
fi

if [ $CUDA -eq 0 ]; then
    verdict='no CUDA device: nothing run'
elif [ $FAILED -eq 0 ]; then
    verdict='every part passed'
else
    verdict='SOME PARTS FAILED'
fi
note "total $((SECONDS - START)) s; $verdict"
exit $FAILED
