#!/usr/bin/env bash
# The GPU checks of issue #23 in one prepared run, for a session lent a GPU machine (the `device`
# tool: its image holds PyTorch with CUDA and every package gannet needs; ../shared does not travel).
#
# Here, once (the data travel in an ignored folder):
#   mkdir -p .data && cp -r ../shared/data/mnist .data/ && echo /.data/ >> .git/info/exclude
# Then, on the device (the stages in order; each writes its log under $OUT):
#   run(command="bash benchmarks/gpu_checks.sh tests step", carry=[".data"], timeout_s=420)
#   run(command="bash benchmarks/gpu_checks.sh train250", carry=[".data"], timeout_s=480)
# Stages: tests (tests/test_graphs.py, test_background.py, test_precision.py on CUDA), step
# (benchmarks/training_step.py --device cuda), train250 (the MNIST preset's 250 epochs, timed
# whole: issue #23's target is under 2.5 minutes), bf16 (20 epochs with --precision bf16).
set -u -o pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src" GANNET_TEST_DATA="$PWD/.data"
OUT="${OUT:-/tmp/gannet-gpu}"
mkdir -p "$OUT"
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/gpu.txt"

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(tests step train250)
for stage in "${stages[@]}"; do
    case "$stage" in
    tests)
        python3 -m pytest -q -p no:cacheprovider tests/test_graphs.py tests/test_background.py \
            tests/test_precision.py 2>&1 | tee "$OUT/tests.txt" | tail -5 ;;
    step)
        python3 benchmarks/training_step.py --data-dir .data --device cuda --steps 1000 2>&1 | tee "$OUT/step.txt" ;;
    train250)
        start=$(date +%s)
        python3 -m gannet train mnist --device cuda --data-dir .data --run-dir /tmp/gannet-run250 --force \
            --no-progress 2>&1 | tee "$OUT/train250.txt" | grep -E "^epoch (1|2|10|100|250)/|gannet:"
        echo "whole command: $(($(date +%s) - start)) s" | tee -a "$OUT/train250.txt" ;;
    bf16)
        python3 -m gannet train mnist --device cuda --precision bf16 --epochs 20 --data-dir .data \
            --run-dir /tmp/gannet-bf16 --force --no-progress 2>&1 | tee "$OUT/bf16.txt" | tail -4 ;;
    *)
        echo "unknown stage: $stage (tests, step, train250, bf16)" >&2
        exit 2 ;;
    esac
done
