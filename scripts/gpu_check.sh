#!/usr/bin/env bash
# The GPU checks of the README's performance section, as one script for a lent GPU machine:
# the CUDA tests, then the bench (ours vs the official transcription on the same card), then the
# bench with compile: true. Every log and JSON goes to $OUT (default gpu_check/); a failing step
# does not stop the ones after it, and the exit status says whether any failed.
#   bash scripts/gpu_check.sh                 # on the GPU machine, from the repository root
#   BENCH_ARGS="--steps 2 --no-eval" ...      # extra bench options (e.g. a quick dry run)
set -uo pipefail
out=${OUT:-gpu_check}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
status=0
step() {  # step NAME COMMAND...: run, log to $out/NAME.log, remember a failure
    local name=$1; shift
    echo "== $name: $*" | tee "$out/$name.log"
    local began=$SECONDS
    "$@" 2>&1 | tee -a "$out/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - began)) s" | tee -a "$out/$name.log"
    [ "$rc" -eq 0 ] || status=1
}
step device "$python" -c "import torch; print('torch', torch.__version__, '| cuda', torch.version.cuda, '|',
      torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"
# -o addopts="": one process, and no need for pytest-xdist on a bare GPU machine (pyproject.toml asks for -n auto)
step tests "$python" -m pytest -o addopts="" -m gpu -q -p no:cacheprovider tests/test_gpu.py
# shellcheck disable=SC2086  # BENCH_ARGS is a list of options
step bench "$python" -m tfvaegan.bench --json "$out/bench_gpu.json" ${BENCH_ARGS:-}
# shellcheck disable=SC2086
step bench_compile "$python" -m tfvaegan.bench --compile --no-official --json "$out/bench_gpu_compile.json" ${BENCH_ARGS:-}
exit $status
