#!/usr/bin/env bash
# Training on a Slurm cluster with srun (one task per GPU).
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py arguments ...]
# Environment: GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, PORT, PYTHON
# (see tools/slurm_run.sh).
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: bash $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py arguments ...]" >&2
    exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
exec bash "$HERE/slurm_run.sh" "$1" "$2" train.py "$3" --work-dir="$4" \
    --launcher="slurm" "${@:5}"
