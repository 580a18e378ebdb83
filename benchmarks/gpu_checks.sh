#!/usr/bin/env bash
# The one prepared command for a machine with a real NVIDIA GPU (issue 8, docs/cuda.md).
#
#   bash benchmarks/gpu_checks.sh            # results and logs in benchmarks/results/gpu/
#   OUT=/some/dir bash benchmarks/gpu_checks.sh
#   BENCH_ARGS= bash benchmarks/gpu_checks.sh   # without the tile sweeps (about 1 minute less)
#
# 1. prints the GPU, driver and package versions Numba sees;
# 2. checks the lean kernel launch (kernels/cuda/launch.py) against Numba's own launch;
#    if that check fails, the rest runs with TINYGRAD_LITE_CUDA_LAUNCH=numba, so the
#    measurements are not lost (the log says so);
# 3. runs benchmarks/bench_cuda.py with the tile sweep (matmul vs cuBLAS, conv vs cuDNN,
#    training steps GPU vs CPU), at most ~5 minutes;
# 4. runs the CUDA test suite for real, without the simulator (pytest -m cuda tests/cuda),
#    in parallel processes when pytest-xdist is installed;
# 5. profiles the host side of a GPU training step (profile_cuda_step.py), with the
#    caching allocator and with Numba's own, for comparison.
# numba-cuda 0.30 needs numpy < 2.5 (it uses np.row_stack, removed in numpy 2.5); where
# the machine's numpy is newer, install numpy 2.4 first (e.g. from a carried wheel, as
# the device tool's README describes, into a directory on PYTHONPATH).
# It uses the machine's own python3 with numpy, numba and numba-cuda already installed
# (torch or cupy for the reference timings) and the package from this checkout via
# PYTHONPATH, so nothing is installed. Each step has a time limit so that the whole
# script stays under 10 minutes; a failing step does not stop the next one.
set -u
cd "$(dirname "$0")/.."
OUT_DIR=${OUT:-benchmarks/results/gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
unset NUMBA_ENABLE_CUDASIM
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0

echo "== GPU and versions"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -3
timeout 60 "$PY" - <<'EOF' 2>&1 | tee "$OUT_DIR/versions.log"
import importlib.metadata as metadata
import platform

print("python", platform.python_version())
for package in ("numpy", "numba", "numba-cuda", "torch", "hypothesis", "pytest", "pytest-xdist"):
    try:
        print(package, metadata.version(package))
    except metadata.PackageNotFoundError:
        print(package, "not installed")
from numba import cuda

print("numba.cuda.is_available():", cuda.is_available())
cuda.detect()
EOF

echo "== lean launch self-check (tests/cuda/test_cuda_launch.py, conv/matmul vs numpy)"
timeout 90 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/cuda/test_cuda_launch.py 2>&1 \
    | tail -3 | tee "$OUT_DIR/lean_launch_check.log"
lean_ok=${PIPESTATUS[0]}
timeout 90 "$PY" - <<'EOF' 2>&1 | tee -a "$OUT_DIR/lean_launch_check.log"
import numpy as np
from numba import cuda

import tinygrad_lite.kernels.cuda as K

rng = np.random.default_rng(0)
x = rng.standard_normal((4, 3, 9, 8)).astype(np.float32)
w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
a = rng.standard_normal((70, 50)).astype(np.float32)
b = rng.standard_normal((50, 30)).astype(np.float32)
dx, dw, da, db = (cuda.to_device(v) for v in (x, w, a, b))
for attempt in range(3):  # the first call of each signature compiles; later ones are lean
    y = K.conv2d(dx, dw, 1, 1).copy_to_host()
    want = K.conv2d(x, w, 1, 1, kernel="generic")
    assert np.allclose(y, want, rtol=1e-4, atol=1e-4), np.abs(y - want).max()
    g = K.conv2d_backward_weight(cuda.to_device(y), dx, w.shape, 1, 1).copy_to_host()
    g_want = K.conv2d_backward_weight(y, x, w.shape, 1, 1, kernel="generic")
    assert np.allclose(g, g_want, rtol=1e-4, atol=1e-3), np.abs(g - g_want).max()
    assert np.allclose(K.matmul(da, db).copy_to_host(), a @ b, rtol=1e-4, atol=1e-4)
    assert np.allclose(K.add(da, 2.0).copy_to_host(), a + 2, rtol=1e-6)
from tinygrad_lite.kernels.cuda.launch import lean_launch_stats
print("lean launch self-check: OK; signatures per path:", lean_launch_stats())
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] && [ "$lean_ok" -eq 0 ] || {
    echo "!! lean launch check FAILED: everything below uses Numba's launch path"
    export TINYGRAD_LITE_CUDA_LAUNCH=numba
    status=1
}

echo "== bench_cuda.py --sweep"
timeout 280 "$PY" benchmarks/bench_cuda.py ${BENCH_ARGS---sweep} --output "$OUT_DIR/cuda.json" 2>&1 \
    | tee "$OUT_DIR/bench_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== CUDA test suite on the GPU (no simulator)"
parallel=()
if "$PY" -c "import xdist" 2>/dev/null; then
    parallel=(-n 8)
fi
timeout 120 "$PY" -m pytest -m cuda tests/cuda -q -p no:cacheprovider "${parallel[@]}" \
    --durations=10 2>&1 | tee "$OUT_DIR/tests_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== host cost of a GPU training step (profile_cuda_step.py)"
timeout 75 "$PY" benchmarks/profile_cuda_step.py --output "$OUT_DIR/cuda_step.json" 2>&1 \
    | tee "$OUT_DIR/profile_cuda_step.log"
echo "== the same building blocks with Numba's own allocator, for comparison"
TINYGRAD_LITE_CUDA_ALLOCATOR=numba timeout 45 "$PY" benchmarks/profile_cuda_step.py --top 0 \
    --output "$OUT_DIR/cuda_step_numba_allocator.json" \
    2>&1 | grep -v "^ *[0-9]* function calls\|^$\|Ordered by\|ncalls" \
    | tee "$OUT_DIR/profile_numba_allocator.log"

echo "== done (status $status); logs and JSON in $OUT_DIR"
exit $status
