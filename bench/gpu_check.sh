#!/usr/bin/env bash
# Issue 6's GPU checks as one command for a lent GPU machine (the device tool), about 9 minutes:
#   1. the CUDA tests (tests/test_cuda.py: every model and precision, a GPU run used and loaded on
#      the CPU, exact resume, data on the GPU or in pinned memory, text, torch.compile);
#   2. the seed model's training images/s on the GPU (bench/scale.py --parts gpu: batch 1024 and
#      8192, eager / compiled / CUDA graphs, 3 epochs);
#   3. minutes of training to the MNIST NLL goal (bench/mnist_nll.py --goal 82).
# Each part has its own time limit and writes its log and JSON into OUT as it goes, so a call cut
# short still brings back what finished. vaekit runs from src/ (the GPU image has torch and the
# libraries vaekit needs; nothing is installed).
#
#   bash bench/gpu_check.sh DATA OUT      # DATA holds mnist/ with MNIST's four .gz files
#
# With the device tool, from the repository root here (../shared does not travel; the copy does):
#   mkdir -p .devdata/mnist && cp ../shared/data/mnist/*.gz .devdata/mnist/ && echo /.devdata/ >> .git/info/exclude
#   run(command="bash bench/gpu_check.sh .devdata $OUT", carry=[".devdata"], timeout_s=590)
set -uo pipefail
data=${1:?usage: bash bench/gpu_check.sh DATA OUT}
out=${2:?usage: bash bench/gpu_check.sh DATA OUT}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 VAEKIT_DATA="$data"
# cuBLAS picks reproducible algorithms with a fixed workspace (the exact-resume test compares bits).
export CUBLAS_WORKSPACE_CONFIG=:4096:8

{ date -u; nvidia-smi; "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)"; } >"$out/env.txt" 2>&1
tail -1 "$out/env.txt"

echo "== 1. CUDA tests"
timeout 170 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/pytest_cuda.log" | tail -15

echo "== 2. seed model images/s on the GPU"
timeout 230 "$py" bench/scale.py --quick --parts gpu --data-dir "$data" --no-peer --out "$out/scale_gpu.json" 2>&1 \
  | tee "$out/scale_gpu.log" | grep -E '^gpu|wrote|Error|error' | tail -12

echo "== 3. minutes to the MNIST NLL goal"
timeout 170 "$py" bench/mnist_nll.py --minutes 2 --probe-minutes 0.5 --goal 82 --k 1000 --data-dir "$data" \
  --out "$out/mnist_nll_gpu.json" 2>&1 | tee "$out/mnist_nll_gpu.log" | grep -E 'after|goal|test NLL|wrote|Error' | tail -12
