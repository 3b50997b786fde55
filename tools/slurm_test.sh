#!/usr/bin/env bash
# Testing on a Slurm cluster with srun (one task per GPU).
#   bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py arguments ...]
# Environment: GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, PORT, PYTHON
# (see tools/slurm_run.sh).
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: bash $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py arguments ...]" >&2
    exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
exec bash "$HERE/slurm_run.sh" "$1" "$2" test.py "$3" "$4" \
    --launcher="slurm" "${@:5}"
