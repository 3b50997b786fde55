#!/usr/bin/env bash
# What tools/slurm_train.sh and tools/slurm_test.sh share: one srun task per GPU.
#   bash tools/slurm_run.sh PARTITION JOB_NAME SCRIPT [SCRIPT arguments ...]
# SCRIPT is a file in tools/ (train.py, test.py). Environment: GPUS (tasks in
# all, default 8), GPUS_PER_NODE (default 8), CPUS_PER_TASK (default 5),
# SRUN_ARGS (extra srun options, split on spaces), PORT (master port, default
# random in 12000-31999), PYTHON (default python).
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
shift 3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
read -r -a SRUN_EXTRA <<< "${SRUN_ARGS:-}"
PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
export MASTER_PORT=${PORT:-$((12000 + RANDOM % 20000))}

set -x
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${SRUN_EXTRA[@]+"${SRUN_EXTRA[@]}"} \
    "$PYTHON" -u "$HERE/$SCRIPT" "$@"
