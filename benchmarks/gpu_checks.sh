#!/usr/bin/env bash
# The GPU checks, in stages that each fit a short session on a lent GPU machine:
#
#   bash benchmarks/gpu_checks.sh tests    # kernel tests, then the whole suite, then gradcheck on the GPU
#   bash benchmarks/gpu_checks.sh bench    # bench.py --device gpu (ops and both training steps)
#   bash benchmarks/gpu_checks.sh plain    # the training steps with our plain xp paths (no kernels)
#   bash benchmarks/gpu_checks.sh tf32     # the training steps with TF32 matmuls on both sides
#
# Run from the repository root; nothing needs installing beyond NumPy, CuPy, pytest (and
# PyTorch for the side-by-side rows). Output goes to $OUT (default gpu-results/).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-python3}

case "${1:-}" in
  tests)
    nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
    $py -m pytest -q -rs tests/test_cuda_kernels.py tests/test_cuda_adamw.py 2>&1 | tee "$OUT/pytest-kernels.txt" | tail -15
    $py -m pytest -q 2>&1 | tee "$OUT/pytest.txt" | tail -15
    $py -m tinyconvmixer.gradcheck --device gpu 2>&1 | tee "$OUT/gradcheck-gpu.txt" | tail -5 ;;
  bench)
    $py benchmarks/bench.py --device gpu --json "$OUT/bench-gpu.json" 2>&1 | tee "$OUT/bench-gpu.txt" ;;
  plain)
    $py benchmarks/bench.py --device gpu --no-kernels --only "train step" \
        --json "$OUT/bench-gpu-plain.json" 2>&1 | tee "$OUT/bench-gpu-plain.txt" ;;
  tf32)
    $py benchmarks/bench.py --device gpu --tf32 --only "train step" \
        --json "$OUT/bench-gpu-tf32.json" 2>&1 | tee "$OUT/bench-gpu-tf32.txt" ;;
  *)
    echo "usage: bash benchmarks/gpu_checks.sh tests|bench|plain|tf32" >&2
    exit 2 ;;
esac
