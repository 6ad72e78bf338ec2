#!/usr/bin/env bash
# One short GPU check (about 5 minutes on one H100): the CUDA tests, the population trainer's CUDA table,
# and one search generation with the trainer on CUDA and on the same machine's CPU.
#
#   bash benchmarks/gpu_check.sh            # on a machine with CUDA and the project installed
#
# Optional, for a bare machine without the project's dependencies: wheels in .whl/ are installed to
# /tmp/site first, and a dataset cache copied into .gpucache/ (datasets/ and references/ of
# $SYMLOSS_CACHE) saves building the Hopper dataset there. Logs go to $OUT (default gpu_out/).
set -uo pipefail
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MPLBACKEND=Agg HF_HUB_OFFLINE=1
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
[ -d .gpucache ] && export SYMLOSS_CACHE=$PWD/.gpucache

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name())"
    nproc
} 2>&1 | tee "$out/machine.txt"

timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py tests/test_train_population.py 2>&1 \
    | tee "$out/gpu_tests.log"
timeout 200 python3 benchmarks/population_speed.py --no-cpu --steps 20 --cuda-sizes 1 8 64 256 1024 4096 --cuda-eager-max 1024 2>&1 \
    | tee "$out/population_speed.log"
if [ "${SEARCH:-1}" = 1 ]; then
    for device in cuda cpu; do
        timeout 150 python3 benchmarks/search_speed.py --population 32 --generations 1 --device "$device" 2>&1 \
            | tee "$out/search_$device.log"
    done
fi
