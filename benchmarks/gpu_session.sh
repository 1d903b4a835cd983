#!/usr/bin/env bash
# One prepared command for a lent GPU machine (bare: CuPy, PyTorch, NumPy, pytest; no internet):
#
#   bash benchmarks/gpu_session.sh                  # all stages, in this order:
#     env        the machine: nvidia-smi, Python and package versions (into session.txt)
#     compile    every kernel, compiled before anything is timed (benchmarks/compile_kernels.py):
#                each configuration of fast/cuda's kernels, and CuPy's own kernels by one warm-up
#                step of each recipe shape; CuPy's disk cache keeps them for the later stages
#     gradcheck  python -m tinyconvmixer.gradcheck --device gpu --impl both (references, then kernels)
#     tests      the GPU half of the test suite (pytest -m gpu); the CPU half is CI's job
#     bench      benchmarks/bench.py --device gpu: every op and both training steps beside PyTorch
#                (batch 512, TF32 off on both sides); its JSON is rewritten after every row
#     train      one epoch of the default recipe on the real data, --device gpu
#   bash benchmarks/gpu_session.sh bench train      # only these stages
#   bash benchmarks/gpu_session.sh --plan           # the stages' time limits and the budget; runs nothing
#
# Results go to $OUT (default gpu-results/), at most 8 files (what the device tool brings back):
# session.txt (the machine, then what ran, how long, and whether it passed), compile.txt,
# gradcheck.txt, pytest.txt, bench.txt, bench-gpu.json, train.txt and run.tar.gz (the training
# run's folder). The exit status is 0 only if every stage passed.
#
# Time. A lease has 15 minutes of device time in all: the machine's start (1-2 minutes), each
# command (at most 10 minutes), and the idle time until it is given back. Each stage has a time
# limit (LIMITS below); a stage stopped at its limit counts as failed, and `timeout` kills it at
# most KILL_AFTER seconds later. The limits, plus KILL_AFTER for each stage, add up to no more
# than the session's deadline ($SESSION_SECONDS, default 540): every stage gets its turn, and the
# whole stays inside a 10-minute command with a minute to spare. With 2 minutes of start that is
# 11 of the 15 minutes, which leaves room to rerun one stage (`... gpu_session.sh bench`) on the
# warm machine. Run it with the device tool's timeout_s at 600.
#
# The data: copy ../shared/data/cifar10-jpeg.tar.gz into .data/ (git-ignored) before the
# machine starts, and bring .data along with the working tree; $DATA overrides the path.
#
# With TINYCONVMIXER_SIMULATE_GPU=1 (CI, tests/README.md) the same script runs on a CPU-only
# machine on the CuPy stand-in (every Python command through tests/support/simulate_gpu.py),
# with sizes that suit it: tiny warm-up models, a tiny bench, and a one-epoch --smoke run on the
# bundled sample with the kernels off (the kernel emulator is far too slow to train). There every
# limit, and the default deadline, is STANDIN_SCALE (default 4) times the GPU's: the stand-in
# computes on a shared 2-core CPU, and no lease is at stake.
set -uo pipefail
cd "$(dirname "$0")/.."
STAGES=(env compile gradcheck tests bench train)
declare -A LIMITS=([env]=30 [compile]=90 [gradcheck]=60 [tests]=100 [bench]=110 [train]=90)
KILL_AFTER=10
simulated=${TINYCONVMIXER_SIMULATE_GPU:-0}
[ "$simulated" = "0" ] && simulated=""
scale=1
[ -n "$simulated" ] && scale=${STANDIN_SCALE:-4}   # the stand-in computes on a shared CPU
for stage in "${STAGES[@]}"; do LIMITS[$stage]=$(( LIMITS[$stage] * scale )); done
SESSION_SECONDS=${SESSION_SECONDS:-$(( 540 * scale ))}
OUT=${OUT:-gpu-results}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
DATA=${DATA:-.data/cifar10-jpeg.tar.gz}

plan_only=""
stages=()
for arg in "$@"; do
    if [ "$arg" = "--plan" ]; then plan_only=1; else stages+=("$arg"); fi
done
[ ${#stages[@]} -eq 0 ] && stages=("${STAGES[@]}")
for stage in "${stages[@]}"; do          # a typo must not cost the stages before it
    if [ -z "${LIMITS[$stage]+set}" ]; then
        echo "unknown stage '$stage': expected ${STAGES[*]}" >&2
        exit 2
    fi
done

# The plan: each stage's limit, and their sum (with KILL_AFTER each) against the deadline.
limits=0
for stage in "${stages[@]}"; do limits=$(( limits + LIMITS[$stage] )); done
planned=$(( limits + ${#stages[@]} * KILL_AFTER ))
if [ -n "$plan_only" ]; then
    for stage in "${stages[@]}"; do printf '%-10s %4d s\n' "$stage" "${LIMITS[$stage]}"; done
    echo "limits: ${limits} s; with ${KILL_AFTER} s to kill each stage: ${planned} s;" \
         "deadline: ${SESSION_SECONDS} s"
    if [ -n "$simulated" ]; then
        echo "(on the CuPy stand-in: ${scale} x the GPU's limits and deadline; no lease)"
    else
        echo "device time: start (up to 120 s) + ${SESSION_SECONDS} s = $(( 120 + SESSION_SECONDS )) s" \
             "of 900; a command may run 600 s"
    fi
    [ "$planned" -le "$SESSION_SECONDS" ] && exit 0
    echo "the limits do not fit the session's ${SESSION_SECONDS} s" >&2
    exit 1
fi
if [ "$planned" -gt "$SESSION_SECONDS" ]; then
    echo "warning: the stages' limits add up to ${planned} s, over SESSION_SECONDS=${SESSION_SECONDS}:" \
         "the last stages may be cut short or skipped" >&2
fi

mkdir -p "$OUT"
deadline=$(( $(date +%s) + SESSION_SECONDS ))
if [ -n "$simulated" ]; then          # every Python command runs on the stand-in (tests/support)
    py="$py tests/support/simulate_gpu.py"
fi

summary="$OUT/session.txt"
: > "$summary"
failed=0

# run NAME LOGFILE COMMAND...: the command for at most its stage's limit (and never past the session's
# deadline, so one stage that hangs cannot eat the others' time), its output to LOGFILE, its tail shown.
run() {
    local name=$1 log=$2; shift 2
    local cap=${LIMITS[$name]} left=$(( deadline - $(date +%s) ))
    [ "$left" -gt "$cap" ] && left=$cap
    if [ "$left" -le 5 ]; then
        echo "$name: SKIPPED, no time left in the session" | tee -a "$summary"
        failed=1
        return
    fi
    local start=$(date +%s) status
    echo "== $name: $* (at most ${left} s)" >> "$log"
    timeout --kill-after=$KILL_AFTER "$left" "$@" >> "$log" 2>&1
    status=$?
    tail -n 12 "$log"
    local verdict="passed"
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then verdict="STOPPED after ${left} s (its time limit)"
    elif [ "$status" -ne 0 ]; then verdict="FAILED (exit $status)"; fi
    [ "$verdict" = "passed" ] || failed=1
    echo "$name: $verdict in $(( $(date +%s) - start )) s" | tee -a "$summary"
}

# env: the machine, at the top of session.txt (one file fewer: the tool brings back 8).
environment() {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    timeout $(( LIMITS[env] / 3 )) nvidia-smi 2>&1 || echo "(no nvidia-smi)"
    local probe
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
    timeout $(( LIMITS[env] * 2 / 3 )) $py "$probe"
    rm -f "$probe"
}

for stage in "${stages[@]}"; do
    case "$stage" in
      env)
        start=$(date +%s)
        environment > "$OUT/env.tmp" 2>&1
        cat "$OUT/env.tmp"
        { cat "$OUT/env.tmp"; echo; } >> "$summary"
        if grep -q "sees a GPU: True" "$OUT/env.tmp"; then echo "env: passed in $(( $(date +%s) - start )) s" >> "$summary"
        else echo "env: FAILED (tinyconvmixer sees no GPU)" | tee -a "$summary"; failed=1; fi
        rm -f "$OUT/env.tmp" ;;
      compile)
        if [ -n "$simulated" ]; then
            run compile "$OUT/compile.txt" $py benchmarks/compile_kernels.py --tiny
        else
            run compile "$OUT/compile.txt" $py benchmarks/compile_kernels.py
        fi ;;
      gradcheck)
        run gradcheck "$OUT/gradcheck.txt" $py -m tinyconvmixer.gradcheck --device gpu --impl both ;;
      tests)
        run tests "$OUT/pytest.txt" $py -m pytest -q -m gpu -rs -p no:cacheprovider ;;
      bench)
        if [ -n "$simulated" ]; then      # the stand-in: each row once, tiny, on the plain paths (the
            # k=9 step is the k=5 step's code at four times the pixels: a minute of CI for nothing new)
            run bench "$OUT/bench.txt" env TINYCONVMIXER_CUDA_KERNELS=0 $py benchmarks/bench.py --device gpu \
                --batch-size 2 --repeats 1 --warmup 0 --json "$OUT/bench-gpu.json" \
                --only "patch,depthwise,pointwise,GELU,BatchNorm,pool,k=5 p=2"
        else
            run bench "$OUT/bench.txt" $py benchmarks/bench.py --device gpu --json "$OUT/bench-gpu.json"
        fi ;;
      train)
        rm -rf "$OUT/run"
        if [ -n "$simulated" ]; then
            run train "$OUT/train.txt" env TINYCONVMIXER_CUDA_KERNELS=0 \
                $py -m tinyconvmixer.train --device gpu --smoke --epochs 1 --out "$OUT/run"
        elif [ ! -f "$DATA" ]; then
            echo "train: FAILED: no data at $DATA (copy ../shared/data/cifar10-jpeg.tar.gz into .data/ and" \
                 "name .data in the device tool's carry, or set DATA)" | tee -a "$summary"
            failed=1
        else
            run train "$OUT/train.txt" $py -m tinyconvmixer.train --device gpu --data "$DATA" --epochs 1 \
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
