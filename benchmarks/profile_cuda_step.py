"""Where the host time of a GPU training step goes (needs a real GPU).

    python benchmarks/profile_cuda_step.py [--steps 10] [--top 25]

Prints (1) the host cost of the building blocks, each the median of many calls:
a device allocation, a small elementwise kernel launch, a tiny matmul; and (2) a
cProfile of MLP training steps through ``Tensor.to("cuda")`` (the model of
``bench_cuda.py``), sorted by own time, so the next optimisation is chosen by
measurement. For a small model the GPU finishes each kernel in microseconds, so the
step time is the host's: Python, Numba's dispatch and the driver calls.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def median_microseconds(fn, cuda, repeats=200) -> float:
    """Median host+device time of ``fn()`` in microseconds (synchronising each call)."""
    fn()
    cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def _launch_floor_kernels(cuda):
    """Two do-nothing kernels: the floor of the launch path (no args, 3 arrays)."""
    from tinygrad_lite.kernels.cuda.launch import LeanKernel

    @cuda.jit
    def nothing():
        pass

    @cuda.jit
    def three_arrays(x, y, z):
        pass

    return LeanKernel(nothing), LeanKernel(three_arrays)


def building_blocks(cuda) -> dict:
    """Host cost of each building block, with the lean launch and with Numba's own.

    The launch path is chosen per call by ``TINYGRAD_LITE_CUDA_LAUNCH`` (see
    ``kernels/cuda/launch.py``), so both columns come from the same process.
    """
    import os

    import tinygrad_lite.kernels.cuda as K

    a = cuda.to_device(np.ones((256, 512), np.float32))
    b = cuda.to_device(np.ones((256, 512), np.float32))
    w = cuda.to_device(np.ones((512, 10), np.float32))
    x = cuda.to_device(np.ones((64, 32, 15, 15), np.float32))
    kernel = cuda.to_device(np.ones((64, 32, 3, 3), np.float32))
    nothing, three_arrays = _launch_floor_kernels(cuda)
    costs = {
        "cuda.synchronize() alone": lambda: None,
        "empty kernel, no arguments": lambda: nothing[1, 32](),
        "empty kernel, 3 device arrays": lambda: three_arrays[1, 32](a, b, w),
        "cuda.device_array (512 KiB)": lambda: cuda.device_array((256, 512), np.float32),
        "K.add (256x512, new output)": lambda: K.add(a, b),
        "K.relu (256x512)": lambda: K.relu(a),
        "K.reduce_sum over axis 0": lambda: K.reduce_sum(a, 0),
        "K.matmul (256x512 @ 512x10)": lambda: K.matmul(a, w),
        "K.conv2d (CIFAR conv2 forward)": lambda: K.conv2d(x, kernel),
    }
    results = {}
    print(f"  {'':34s} {'lean':>8s} {'numba':>8s}  (us, launch path)")
    previous = os.environ.get("TINYGRAD_LITE_CUDA_LAUNCH")
    for name, fn in costs.items():
        row = {}
        for path in ("lean", "numba"):
            os.environ["TINYGRAD_LITE_CUDA_LAUNCH"] = path
            row[path] = median_microseconds(fn, cuda)
        results[name] = row
        print(f"  {name:34s} {row['lean']:8.1f} {row['numba']:8.1f}")
    os.environ.pop("TINYGRAD_LITE_CUDA_LAUNCH")
    if previous is not None:
        os.environ["TINYGRAD_LITE_CUDA_LAUNCH"] = previous
    return results


def profile_mlp_steps(steps: int, top: int) -> None:
    import tinygrad_lite as tl
    import tinygrad_lite.nn.functional as F
    from tinygrad_lite import nn, optim

    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10)).to("cuda")
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(1)
    x = tl.Tensor(rng.standard_normal((256, 784)).astype(np.float32)).to("cuda")
    y = tl.Tensor(rng.integers(0, 10, 256)).to("cuda")

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):  # compile every kernel first
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    print(f"  {(time.perf_counter() - start) / steps * 1e3:.2f} ms per step "
          f"(median of nothing: {steps} steps in a row)")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).resolve().parent / "results" / "cuda_step.json")
    args = parser.parse_args(argv)
    from numba import config, cuda

    if config.ENABLE_CUDASIM or not cuda.is_available():
        print("profile_cuda_step: needs a real GPU (and no simulator). Nothing measured.")
        return 0
    import tinygrad_lite.kernels.cuda as K

    print("host cost of building blocks (median, synchronised):")
    blocks = building_blocks(cuda)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"building_blocks_us": blocks}, indent=2) + "\n")
    print(f"wrote {args.output}")
    print("MLP training step (784-512-512-10, batch 256) on the GPU:")
    profile_mlp_steps(args.steps, args.top)
    print("allocator:", K.memory_stats())
    from tinygrad_lite.kernels.cuda.launch import lean_launch_stats

    print("launch signatures per path:", lean_launch_stats())
    return 0


if __name__ == "__main__":
    sys.exit(main())
