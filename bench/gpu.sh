#!/usr/bin/env bash
# The GPU check of issue 13 in one command, under 8 minutes on one GPU:
#
#     bash bench/gpu.sh OUT_DIR                                  # on the GPU machine
#     PYTHON=.venv/bin/python bash bench/gpu.sh OUT_DIR --smoke  # anywhere: tiny sizes, CPU
#
# Prints the GPU and the torch version, runs the GPU tests (pytest -m gpu -x), then measures
# with bench/gpu_bench.py: ResNet34 training at 224 px (fp32, bf16, bf16 + channels_last,
# + compile; the Trainer against a bare loop), inference at batch 256, a profile of one
# trainer epoch, the quick recipe on digits and a CIFAR-sized synthetic run. OUT_DIR gets
# gpu_bench.md (the table), rows.jsonl (every figure), phases.tsv (exit code and seconds per
# phase) and log.txt (all output).
#
# Each phase is its own process under `timeout` (which stops the whole process group, compile
# workers too): a phase that hangs or runs long costs its own time box, not the run. The
# boxes add up to 445 s (475 s with nvidia-smi's and the report's); a phase ends its
# measurements early to stay inside its box. The report is written whatever the phases did.
set -u
out=${1:?usage: bash bench/gpu.sh OUT_DIR [--smoke]}
shift
extra=("$@")
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 2  # OUT_DIR as given, before the cd below
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}  # the GPU machine's python3 holds its own PyTorch
: >"$out/rows.jsonl"
: >"$out/phases.tsv"
: >"$out/log.txt"
export PYTHONUNBUFFERED=1

phase() {  # phase NAME LIMIT_SECONDS
    local name=$1 limit=$2 t0=$SECONDS rc
    echo "=== $name (at most $limit s; $((SECONDS)) s so far)" | tee -a "$out/log.txt"
    timeout -k 2 "$limit" "$py" bench/gpu_bench.py "$name" --out "$out" \
        --budget $((limit - 8)) "${extra[@]}" 2>&1 | tee -a "$out/log.txt"
    rc=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" $((SECONDS - t0)) "$limit" >>"$out/phases.tsv"
}

if command -v nvidia-smi >/dev/null; then
    timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
        | tee -a "$out/log.txt"
fi
phase info 15
phase tests 65
phase train 60
phase train-compile 80
phase inference 40
phase profile 30
phase recipe 85
phase cifar 70
timeout -k 2 20 "$py" bench/gpu_bench.py report --out "$out" --phases "$out/phases.tsv" \
    "${extra[@]}" 2>&1 | tee -a "$out/log.txt"
if [ "${PIPESTATUS[0]}" -ne 0 ]; then  # the table could not be made: keep the phase log at least
    { echo "# GPU check: the report failed (see log.txt)"; echo
      echo "phase, exit code, seconds, limit:"; cat "$out/phases.tsv"; } >"$out/gpu_bench.md"
fi
echo "=== done in $SECONDS s: $out/gpu_bench.md" | tee -a "$out/log.txt"
