#!/usr/bin/env bash
# One prepared command for a lent GPU machine (bare: CuPy, PyTorch, NumPy, pytest; no internet):
#
#   bash benchmarks/gpu_session.sh                  # all stages, in this order:
#     env        the machine: nvidia-smi, Python and package versions
#     gradcheck  python -m tinyconvmixer.gradcheck --device gpu --impl both (references, then kernels)
#     tests      the GPU half of the test suite (pytest -m gpu); the CPU half is CI's job
#     bench      benchmarks/bench.py --device gpu: every op and both training steps beside PyTorch
#                (batch 512, TF32 off on both sides)
#     train      one epoch of the default recipe on the real data, --device gpu
#   bash benchmarks/gpu_session.sh bench train      # only these stages
#
# Results go to $OUT (default gpu-results/), at most 8 files: session.txt (what ran, how long,
# and whether it passed), env.txt, gradcheck.txt, pytest.txt, bench.txt, bench-gpu.json,
# train.txt and run.tar.gz (the training run's folder). The exit status is 0 only if every
# stage passed. Each stage has a time limit (gradcheck 90 s, tests 240 s, bench and train
# 180 s each) and the whole session stays inside $SESSION_SECONDS (default 520: a 9-minute
# command with room to spare); a stage stopped at its limit counts as failed.
#
# The data: copy ../shared/data/cifar10-jpeg.tar.gz into .data/ (git-ignored) before the
# machine starts, and bring .data along with the working tree; $DATA overrides the path.
#
# With TINYCONVMIXER_SIMULATE_GPU=1 (CI, tests/README.md) the same script runs on a CPU-only
# machine on the CuPy stand-in (every Python command through tests/support/simulate_gpu.py),
# with sizes that suit it: a tiny bench, and a one-epoch --smoke run on the bundled sample with
# the kernels off (the kernel emulator is far too slow to train).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
DATA=${DATA:-.data/cifar10-jpeg.tar.gz}
deadline=$(( $(date +%s) + ${SESSION_SECONDS:-520} ))
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(env gradcheck tests bench train)
for stage in "${stages[@]}"; do          # a typo must not cost the stages before it
    case "$stage" in
      env|gradcheck|tests|bench|train) ;;
      *) echo "unknown stage '$stage': expected env gradcheck tests bench train" >&2; exit 2 ;;
    esac
done
simulated=${TINYCONVMIXER_SIMULATE_GPU:-0}
[ "$simulated" = "0" ] && simulated=""
if [ -n "$simulated" ]; then          # every Python command runs on the stand-in (tests/support)
    py="$py tests/support/simulate_gpu.py"
fi

summary="$OUT/session.txt"
: > "$summary"
failed=0

# run NAME CAP LOGFILE COMMAND...: the command for at most CAP seconds (and never past the session's
# deadline, so one stage that hangs cannot eat the others' time), its output to LOGFILE, its tail shown.
run() {
    local name=$1 cap=$2 log=$3; shift 3
    local left=$(( deadline - $(date +%s) ))
    [ "$left" -gt "$cap" ] && left=$cap
    if [ "$left" -le 5 ]; then
        echo "$name: SKIPPED, no time left in the session" | tee -a "$summary"
        failed=1
        return
    fi
    local start=$(date +%s) status
    echo "== $name: $* (at most ${left} s)" >> "$log"
    timeout --kill-after=10 "$left" "$@" >> "$log" 2>&1
    status=$?
    tail -n 12 "$log"
    local verdict="passed"
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then verdict="STOPPED after ${left} s (its time limit)"
    elif [ "$status" -ne 0 ]; then verdict="FAILED (exit $status)"; fi
    [ "$verdict" = "passed" ] || failed=1
    echo "$name: $verdict in $(( $(date +%s) - start )) s" | tee -a "$summary"
}

for stage in "${stages[@]}"; do
    case "$stage" in
      env)
        {
            echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
            timeout 30 nvidia-smi 2>&1 || echo "(no nvidia-smi)"
            probe=$(mktemp --suffix=.py)
            cat > "$probe" <<'EOF'
import platform, numpy
from tinyconvmixer.engine import backend
backend.gpu_available()             # first: under TINYCONVMIXER_SIMULATE_GPU this loads the stand-in
print("python", platform.python_version(), "| numpy", numpy.__version__)
for name in ("cupy", "torch", "scipy", "matplotlib", "pytest"):
    try:
        module = __import__(name)
        print(name, module.__version__, "(CuPy stand-in)" if getattr(module, "__standin__", False) else "")
    except ImportError as exc:
        print(name, "MISSING:", exc)
print("tinyconvmixer sees a GPU:", backend.gpu_available(), backend._cupy_error or "")
EOF
            timeout 60 $py "$probe"
            rm -f "$probe"
        } > "$OUT/env.txt" 2>&1
        cat "$OUT/env.txt"
        if grep -q "sees a GPU: True" "$OUT/env.txt"; then echo "env: passed" >> "$summary"
        else echo "env: FAILED (tinyconvmixer sees no GPU)" | tee -a "$summary"; failed=1; fi ;;
      gradcheck)
        run gradcheck 90 "$OUT/gradcheck.txt" $py -m tinyconvmixer.gradcheck --device gpu --impl both ;;
      tests)
        run tests 240 "$OUT/pytest.txt" $py -m pytest -q -m gpu -rs -p no:cacheprovider ;;
      bench)
        if [ -n "$simulated" ]; then      # the stand-in: every row once, tiny, on the plain paths
            run bench 180 "$OUT/bench.txt" env TINYCONVMIXER_CUDA_KERNELS=0 $py benchmarks/bench.py --device gpu \
                --batch-size 2 --repeats 1 --warmup 0 --json "$OUT/bench-gpu.json"
        else
            run bench 180 "$OUT/bench.txt" $py benchmarks/bench.py --device gpu --json "$OUT/bench-gpu.json"
        fi ;;
      train)
        rm -rf "$OUT/run"
        if [ -n "$simulated" ]; then
            run train 180 "$OUT/train.txt" env TINYCONVMIXER_CUDA_KERNELS=0 \
                $py -m tinyconvmixer.train --device gpu --smoke --epochs 1 --out "$OUT/run"
        elif [ ! -f "$DATA" ]; then
            echo "train: FAILED: no data at $DATA (copy ../shared/data/cifar10-jpeg.tar.gz into .data/ and" \
                 "name .data in the device tool's carry, or set DATA)" | tee -a "$summary"
            failed=1
        else
            run train 180 "$OUT/train.txt" $py -m tinyconvmixer.train --device gpu --data "$DATA" --epochs 1 \
                --out "$OUT/run"
        fi
        if [ -d "$OUT/run" ]; then
            tar -czf "$OUT/run.tar.gz" --exclude='*.npz' -C "$OUT" run && rm -rf "$OUT/run"   # no checkpoints
        fi ;;
    esac
done

echo
cat "$summary"
if [ "$failed" -ne 0 ]; then
    echo "GPU session: SOME STAGES FAILED (logs in $OUT)"
    exit 1
fi
echo "GPU session: every stage passed (logs in $OUT)"
