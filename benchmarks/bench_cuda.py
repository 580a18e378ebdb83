"""Benchmark the CUDA kernels on a real GPU against cuBLAS / cuDNN.

    python benchmarks/bench_cuda.py            # about 1-3 minutes on a recent GPU
    python benchmarks/bench_cuda.py --quick    # smaller sizes, for a smoke run

What it measures (float32 throughout):

1. ``matmul`` GFLOP/s at n = 1024, 2048, 4096, 8192 (square), next to cuBLAS through
   CuPy or PyTorch if one is importable. TF32 tensor cores are switched off for the
   reference, so both sides do plain FP32 FMAs (the fair comparison for a CUDA-core
   kernel). Target: at least 50% of cuBLAS at n = 4096.
2. ``conv2d`` forward + both backward passes on the two convolution shapes of the
   CIFAR example CNN (batch 64; 3x32x32 -> 32 filters 3x3; 32x15x15 -> 64 filters 3x3),
   next to cuDNN through PyTorch if present. Target: within 3x of cuDNN.
3. Training steps through the CUDA tensor backend (``Module.to("cuda")``), GPU vs CPU:
   an MNIST-size MLP, and a CIFAR-size CNN once ``nn.Conv2d`` / ``nn.MaxPool2d`` exist
   (skipped with a message until then).

Times are medians of several runs measured with CUDA events after a warm-up call (which
also absorbs Numba's JIT compilation); for conv, ours and cuDNN's alternate in three
rounds and each side keeps its fastest round. A table is printed and everything is written to
``benchmarks/results/cuda.json``. Without a GPU (``numba.cuda.is_available()`` False, or
the simulator switched on) the script says so and exits without measuring.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results" / "cuda.json"
MATMUL_SIZES = (1024, 2048, 4096, 8192)
QUICK_MATMUL_SIZES = (512, 1024)
CONV_CASES = {
    # name: (x shape, w shape, stride, padding)
    "conv1 64x3x32x32 -> 32 (3x3)": ((64, 3, 32, 32), (32, 3, 3, 3), 1, 0),
    "conv2 64x32x15x15 -> 64 (3x3)": ((64, 32, 15, 15), (64, 32, 3, 3), 1, 0),
}
SWEEP_MATMUL_TILES = (
    # (bm, bn, bk, tm, tn): block tile, k-step, outputs per thread
    (64, 64, 8, 4, 4), (128, 128, 8, 8, 8), (128, 64, 8, 8, 4), (64, 128, 8, 4, 8),
    (128, 128, 16, 8, 8), (64, 64, 16, 4, 4),
)
SWEEP_GENERIC_MATMUL_TILES = ((64, 64, 8, 4, 4), (128, 128, 8, 8, 8))
SWEEP_CONV_TILES = (
    (32, 64, 8, 2, 4), (64, 64, 8, 4, 4), (16, 64, 8, 1, 4), (32, 32, 8, 2, 2),
    (8, 256, 8, 1, 8), (64, 32, 8, 4, 2), (64, 128, 8, 4, 8), (128, 64, 8, 8, 4),
)
CONV_ROUNDS = 3
"""Alternating rounds of ours and cuDNN's conv passes (see ``bench_conv_case``)."""
TIME_BUDGET_S = 150.0
"""Stop starting new measurements after this long (the whole run must stay < 5 min)."""
SWEEP_BUDGET_S = {"matmul": 40.0, "conv2d": 60.0}
"""Each optional tile sweep (``--sweep``) stops starting new cases after this long."""


# ----------------------------------------------------------------------- setup


def gpu_or_exit():
    """numba.cuda if a real GPU is usable, else print why and exit cleanly."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        print("bench_cuda: the Numba CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1); "
              "benchmarks need a real GPU. Nothing measured.")
        sys.exit(0)
    try:
        from numba import cuda
    except ImportError as error:
        print(f"bench_cuda: numba.cuda cannot be imported ({error}); "
              "install the GPU extra: pip install 'tinygrad_lite[cuda]'. Nothing measured.")
        sys.exit(0)
    if not cuda.is_available():
        print("bench_cuda: no CUDA GPU available (numba.cuda.is_available() is False). "
              "Run this on a machine with an NVIDIA GPU and driver. Nothing measured.")
        sys.exit(0)
    return cuda


def reference_library():
    """('torch', module) or ('cupy', module) for cuBLAS/cuDNN, or (None, None)."""
    try:
        import torch

        if torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = False  # plain FP32, no tensor cores
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cudnn.benchmark = True
            return "torch", torch
    except ImportError:
        pass
    try:
        import cupy

        return "cupy", cupy
    except ImportError:
        return None, None


@contextlib.contextmanager
def launch_path(path: str):
    """Run the block with ``TINYGRAD_LITE_CUDA_LAUNCH=path`` (kernels/cuda/launch.py)."""
    previous = os.environ.get("TINYGRAD_LITE_CUDA_LAUNCH")
    os.environ["TINYGRAD_LITE_CUDA_LAUNCH"] = path
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TINYGRAD_LITE_CUDA_LAUNCH")
        else:
            os.environ["TINYGRAD_LITE_CUDA_LAUNCH"] = previous


def time_gpu(cuda, fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs, after one warm-up call."""
    fn()
    cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = cuda.event(), cuda.event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)  # milliseconds -> seconds
    return statistics.median(times)


def time_reference(lib_name, lib, fn, repeats: int) -> float:
    """Median seconds of a torch/cupy call (their own streams and events)."""
    sync = lib.cuda.synchronize if lib_name == "torch" else lib.cuda.Device().synchronize
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------- matmul


def bench_matmul(cuda, K, lib_name, lib, sizes, deadline):
    rows = []
    rng = np.random.default_rng(0)
    for n in sizes:
        if time.perf_counter() > deadline:
            print(f"  matmul n={n}: skipped (time budget)")
            continue
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        da, db = cuda.to_device(a), cuda.to_device(b)
        dc = cuda.device_array((n, n), dtype=np.float32)
        repeats = 3 if n >= 4096 else 10
        seconds = time_gpu(cuda, lambda da=da, db=db, dc=dc: K.matmul(da, db, out=dc), repeats)
        check = K.matmul(cuda.to_device(a[:256]), db).copy_to_host()
        error = float(np.max(np.abs(check - a[:256].astype(np.float64) @ b)))
        flops = 2.0 * n**3
        row = {"n": n, "seconds": seconds, "gflops": flops / seconds / 1e9, "max_abs_error": error}
        if lib_name == "torch":
            ta, tb = lib.as_tensor(a, device="cuda"), lib.as_tensor(b, device="cuda")
            ref = time_reference(lib_name, lib, lambda ta=ta, tb=tb: ta @ tb, repeats)
        elif lib_name == "cupy":
            ca, cb = lib.asarray(a), lib.asarray(b)
            ref = time_reference(lib_name, lib, lambda ca=ca, cb=cb: ca @ cb, repeats)
        else:
            ref = None
        if ref is not None:
            row.update(reference_seconds=ref, reference_gflops=flops / ref / 1e9,
                       fraction_of_cublas=ref / seconds)
        rows.append(row)
        print("  " + format_row(f"matmul n={n}", row, "gflops"), flush=True)
    return rows


def sweep_matmul_tiles(cuda, K, n, deadline):
    """GFLOP/s of each candidate tiling at ``n``: the data for choosing the defaults."""
    from tinygrad_lite.kernels.cuda.gemm import GemmTiles, strided_gemm_fits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    da, db = cuda.to_device(a), cuda.to_device(b)
    dc = cuda.device_array((n, n), dtype=np.float32)
    want = a[:64].astype(np.float64) @ b
    rows = []
    for spec in SWEEP_MATMUL_TILES:
        tiles = GemmTiles(*spec)
        kernels = ("strided",) if strided_gemm_fits(tiles) else ("generic",)
        if spec in SWEEP_GENERIC_MATMUL_TILES:  # the index-function kernel, for comparison
            kernels += ("generic",)
        for kernel in kernels:
            if time.perf_counter() > deadline:
                return rows
            row = {"tiles": spec, "kernel": kernel, "n": n}
            try:
                seconds = time_gpu(cuda, lambda t=tiles, k=kernel: K.matmul(
                    da, db, tiles=t, out=dc, kernel=k), 3)
            except Exception as error:  # e.g. too many registers or shared memory
                print(f"  tiles {spec} {kernel}: failed ({type(error).__name__}: {error})")
                rows.append({**row, "error": f"{type(error).__name__}: {error}"})
                continue
            error = float(np.max(np.abs(dc.copy_to_host()[:64] - want)))
            gflops = 2.0 * n**3 / seconds / 1e9
            rows.append({**row, "seconds": seconds, "gflops": gflops, "max_abs_error": error})
            print(f"  tiles {spec} {kernel:8s}: {seconds * 1e3:8.2f} ms {gflops:9.0f} GFLOP/s "
                  f"(max error {error:.1e})", flush=True)
    return rows


def _conv_passes(K, x, w, g, x_shape, w_shape, stride, padding, tiles=None, kernel=None):
    """The three conv passes with these tiles and kernel, as argument-free callables."""
    return {
        "forward": lambda: K.conv2d(x, w, stride, padding, tiles=tiles, kernel=kernel),
        "backward_input": lambda: K.conv2d_backward_input(g, w, x_shape, stride, padding,
                                                          tiles=tiles, kernel=kernel),
        "backward_weight": lambda: K.conv2d_backward_weight(g, x, w_shape, stride, padding,
                                                            tiles=tiles, kernel=kernel),
    }


def sweep_conv_tiles(cuda, K, deadline):
    """Each conv pass of each CIFAR case with each candidate tiling of the implicit-GEMM
    kernel (milliseconds), then the fastest tiling of each pass ("tuned")."""
    from tinygrad_lite.kernels.cuda.conv_gemm import implicit_gemm_fits
    from tinygrad_lite.kernels.cuda.gemm import GemmTiles

    rows = []
    rng = np.random.default_rng(1)
    for name, (x_shape, w_shape, stride, padding) in CONV_CASES.items():
        x = cuda.to_device(rng.standard_normal(x_shape, dtype=np.float32))
        w = cuda.to_device(rng.standard_normal(w_shape, dtype=np.float32))
        y = K.conv2d(x, w, stride, padding)
        g = cuda.to_device(rng.standard_normal(y.shape, dtype=np.float32))
        case_rows = []
        for spec in SWEEP_CONV_TILES:
            if time.perf_counter() > deadline:
                break
            if not implicit_gemm_fits(GemmTiles(*spec)):
                continue
            passes = _conv_passes(K, x, w, g, x_shape, w_shape, stride, padding,
                                  GemmTiles(*spec))
            row = {"case": name, "tiles": spec}
            for pass_name, fn in passes.items():
                try:
                    row[f"{pass_name}_ms"] = time_gpu(cuda, fn, 10) * 1e3
                except Exception as error:
                    row[f"{pass_name}_ms"] = None
                    row[f"{pass_name}_error"] = f"{type(error).__name__}: {error}"
            case_rows.append(row)
            cells = "  ".join(f"{p} {row[f'{p}_ms']:.3f} ms" if row[f"{p}_ms"] is not None
                              else f"{p} failed" for p in passes)
            print(f"  {name} tiles {spec}: {cells}", flush=True)
        rows += case_rows
        best = {}
        for pass_name in ("forward", "backward_input", "backward_weight"):
            timed = [r for r in case_rows if r.get(f"{pass_name}_ms") is not None]
            if timed:
                fastest = min(timed, key=lambda r: r[f"{pass_name}_ms"])
                best[pass_name] = (fastest["tiles"], fastest[f"{pass_name}_ms"])
        if best:
            total = sum(ms for _, ms in best.values())
            rows.append({"case": name, "tuned": {p: list(t) for p, (t, _) in best.items()},
                         "tuned_total_ms": total})
            print(f"  {name} tuned (fastest tiles per pass): {total:.3f} ms  "
                  + "  ".join(f"{p} {t}" for p, (t, _) in best.items()), flush=True)
    return rows


# ------------------------------------------------------------------------ conv


def bench_conv(cuda, K, lib_name, lib, deadline):
    rows = []
    for name, case in CONV_CASES.items():
        if time.perf_counter() > deadline:
            print(f"  {name}: skipped (time budget)")
            continue
        row = {"case": name, **bench_conv_case(cuda, K, lib_name, lib, *case)}
        rows.append(row)
        print("  " + format_row(name, row, None), flush=True)
        passes = ("forward", "backward_input", "backward_weight")
        print("      passes (ms): " + "  ".join(
            f"{p} {row[f'{p}_seconds'] * 1e3:.3f}"
            + (f" (cuDNN {row[f'reference_{p}_seconds'] * 1e3:.3f})"
               if f"reference_{p}_seconds" in row else "") for p in passes))
        print(f"      same passes: index-function kernel {row['generic_kernel_seconds'] * 1e3:.2f}"
              f" ms, Numba's launch path {row['numba_launch_seconds'] * 1e3:.2f} ms", flush=True)
    return rows


def bench_conv_case(cuda, K, lib_name, lib, x_shape, w_shape, stride, padding):
    """Seconds for our forward, backward-input and backward-weight (and cuDNN's)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32) * 0.1
    dx, dw = cuda.to_device(x), cuda.to_device(w)
    y = K.conv2d(dx, dw, stride, padding)
    g = cuda.to_device(rng.standard_normal(y.shape, dtype=np.float32))
    passes = _conv_passes(K, dx, dw, g, x_shape, w_shape, stride, padding)
    # Ours and cuDNN's passes alternate for CONV_ROUNDS rounds, each pass the median of
    # 20 calls, and each side keeps its fastest round: the GPU host's timing drifts by
    # tens of percent within a minute, and this gives both sides the same chances.
    ours_rounds, reference_rounds = [], []
    for _ in range(CONV_ROUNDS):
        ours_rounds.append({f"{p}_seconds": time_gpu(cuda, fn, 20) for p, fn in passes.items()})
        if lib_name == "torch":
            reference_rounds.append(torch_conv_times(lib, x, w, g.copy_to_host(), stride,
                                                     padding))
    row = {key: min(r[key] for r in ours_rounds) for key in ours_rounds[0]}
    row["seconds"] = sum(row.values())
    row["rounds"] = CONV_ROUNDS
    # The same passes with the index-function kernel and with Numba's own launch, so
    # that each change is measured against what it replaced, in the same run.
    generic = _conv_passes(K, dx, dw, g, x_shape, w_shape, stride, padding, kernel="generic")
    row["generic_kernel_seconds"] = sum(time_gpu(cuda, fn, 20) for fn in generic.values())
    with launch_path("numba"):
        row["numba_launch_seconds"] = sum(time_gpu(cuda, fn, 20) for fn in passes.values())
    want = y.copy_to_host()
    got = torch_or_none_forward(lib_name, lib, x, w, stride, padding)
    if got is not None:
        row["max_abs_error_vs_reference"] = float(np.max(np.abs(got - want)))
    if reference_rounds:
        reference = {key: min(r[key] for r in reference_rounds) for key in reference_rounds[0]
                     if key != "reference_seconds"}
        reference["reference_seconds"] = sum(reference.values())
        row.update(reference)
        row["ratio_to_cudnn"] = row["seconds"] / row["reference_seconds"]
    return row


def torch_or_none_forward(lib_name, lib, x, w, stride, padding):
    """cuDNN's forward result on the host, to check ours against (None without torch)."""
    if lib_name != "torch":
        return None
    import torch.nn.functional as F

    tx, tw = lib.as_tensor(x, device="cuda"), lib.as_tensor(w, device="cuda")
    return F.conv2d(tx, tw, stride=stride, padding=padding).cpu().numpy()


def torch_conv_times(torch, x, w, g, stride, padding):
    """cuDNN times for the same three passes (torch.nn.grad gives each backward alone)."""
    import torch.nn.functional as F
    from torch.nn.grad import conv2d_input, conv2d_weight

    tx, tw, tg = (torch.as_tensor(a, device="cuda") for a in (x, w, g))
    passes = {
        "forward": lambda: F.conv2d(tx, tw, stride=stride, padding=padding),
        "backward_input": lambda: conv2d_input(tx.shape, tw, tg, stride=stride, padding=padding),
        "backward_weight": lambda: conv2d_weight(tx, tw.shape, tg, stride=stride,
                                                 padding=padding),
    }
    times = {f"reference_{p}_seconds": time_reference("torch", torch, fn, 20)
             for p, fn in passes.items()}
    times["reference_seconds"] = sum(times.values())
    return times


# ------------------------------------------------------------ training steps


def _training_step_seconds(make_model, images, labels, device, steps):
    """Median seconds of one SGD training step (forward, backward, update) on ``device``."""
    import tinygrad_lite as tl
    import tinygrad_lite.nn.functional as F
    from tinygrad_lite import optim

    tl.manual_seed(0)
    model = make_model().to(device)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = tl.Tensor(images).to(device)
    y = tl.Tensor(labels).to(device)
    times = []
    for _ in range(steps + 1):  # the first step warms up (JIT compilation)
        start = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        loss.item()  # waits for the GPU
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def _compare_devices(label, make_model, images, labels, steps):
    """Time the step on the CPU and on the GPU; a result row (or an error row)."""
    try:
        cpu = _training_step_seconds(make_model, images, labels, "cpu", steps)
        gpu = _training_step_seconds(make_model, images, labels, "cuda", steps)
    except Exception as error:  # report, do not lose the kernel numbers measured so far
        print(f"  {label}: failed ({type(error).__name__}: {error})")
        return {"error": f"{type(error).__name__}: {error}"}
    row = {"cpu_seconds": cpu, "gpu_seconds": gpu, "speedup": cpu / gpu}
    print(f"  {label}: CPU {cpu * 1e3:8.1f} ms  GPU {gpu * 1e3:8.1f} ms  "
          f"speedup {cpu / gpu:5.1f}x")
    return row


def bench_mlp_training_step(steps: int = 5):
    """An MNIST-size MLP training step through the CUDA tensor backend, GPU vs CPU.

    784 -> 512 -> ReLU -> 512 -> ReLU -> 10, cross-entropy, SGD with momentum, batch 256.
    """
    try:
        from tinygrad_lite import nn
    except ImportError as error:
        print(f"  MLP training step: skipped, tinygrad_lite.nn is not importable ({error})")
        return None
    rng = np.random.default_rng(1)
    images = rng.standard_normal((256, 784)).astype(np.float32)
    labels = rng.integers(0, 10, 256)

    def mlp():
        return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                             nn.Linear(512, 10))

    return _compare_devices("MLP training step (batch 256)", mlp, images, labels, steps)


def bench_cnn_training_step(steps: int = 5):
    """A CIFAR-size CNN training step, GPU vs CPU, built from ``tinygrad_lite.nn``.

    Needs ``nn.Conv2d`` and ``nn.MaxPool2d``; until they exist this returns None and
    prints why. The model: Conv2d(3, 32, 3) -> ReLU -> MaxPool2d(2) -> Conv2d(32, 64, 3)
    -> ReLU -> MaxPool2d(2) -> Flatten -> Linear(64*6*6, 10), cross-entropy, SGD with
    momentum, batch 64 of random 3x32x32 images.
    """
    try:
        import tinygrad_lite as tl
        from tinygrad_lite import nn
    except ImportError as error:
        print(f"  CNN training step: skipped, tinygrad_lite nn is not importable yet ({error})")
        return None
    needed = ("Sequential", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear")
    if not all(hasattr(nn, name) for name in needed) or not hasattr(tl, "cuda"):
        print("  CNN training step: skipped, tinygrad_lite.nn layers or tl.cuda not there yet")
        return None

    rng = np.random.default_rng(2)
    images = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, 64)

    def cnn():
        return nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64 * 6 * 6, 10))

    return _compare_devices("CNN training step (batch 64)", cnn, images, labels, steps)


# ---------------------------------------------------------------------- output


def format_row(name, row, rate_key):
    text = f"{name:34s} {row['seconds'] * 1e3:9.2f} ms"
    if rate_key:
        text += f" {row[rate_key]:9.0f} GFLOP/s"
    if "reference_seconds" in row:
        text += f" | reference {row['reference_seconds'] * 1e3:9.2f} ms"
        if "fraction_of_cublas" in row:
            text += f" -> ours at {row['fraction_of_cublas'] * 100:5.1f}% of cuBLAS"
        if "ratio_to_cudnn" in row:
            text += f" -> {row['ratio_to_cudnn']:5.2f}x cuDNN's time"
    return text


def versions() -> dict:
    """numba, numba-cuda, numpy and the reference library's versions, for the record."""
    import importlib.metadata as metadata

    found = {}
    for package in ("numba", "numba-cuda", "numpy", "torch", "cupy-cuda13x", "cupy-cuda12x"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def guarded(section, *args):
    """Run one section of the benchmark; an error is printed and recorded, and the
    sections after it still run (a GPU session is too short to lose them all)."""
    try:
        return section(*args)
    except Exception as error:
        print(f"  {section.__name__} failed: {type(error).__name__}: {error}", flush=True)
        return {"error": f"{type(error).__name__}: {error}"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--sweep", action="store_true",
                        help="also time every candidate tiling (matmul at n=4096, the conv "
                             "cases), to choose the default tiles")
    args = parser.parse_args(argv)

    cuda = gpu_or_exit()
    import tinygrad_lite.kernels.cuda as K

    deadline = time.perf_counter() + TIME_BUDGET_S
    lib_name, lib = reference_library()
    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
    print(f"GPU: {name}  reference: {lib_name or 'none (install torch or cupy)'}")
    print("matmul, float32:")
    matmul = guarded(bench_matmul, cuda, K, lib_name, lib,
                     QUICK_MATMUL_SIZES if args.quick else MATMUL_SIZES, deadline)
    print("conv2d forward + backward (input and weight), float32:")
    conv = guarded(bench_conv, cuda, K, lib_name, lib, deadline)
    print("training step through the CUDA tensor backend, float32:")
    mlp = bench_mlp_training_step() if time.perf_counter() < deadline else None
    cnn = bench_cnn_training_step() if time.perf_counter() < deadline else None

    sweep = None
    if args.sweep:
        sweep_n = QUICK_MATMUL_SIZES[-1] if args.quick else 4096
        print(f"tile sweep: matmul n={sweep_n}, float32:")
        sweep = {"matmul": guarded(sweep_matmul_tiles, cuda, K, sweep_n,
                                   time.perf_counter() + SWEEP_BUDGET_S["matmul"])}
        print("tile sweep: conv passes, float32:")
        sweep["conv2d"] = guarded(sweep_conv_tiles, cuda, K,
                                  time.perf_counter() + SWEEP_BUDGET_S["conv2d"])

    report = {"gpu": name, "reference": lib_name, "python": platform.python_version(),
              "versions": versions(),
              "matmul": matmul, "conv2d": conv, "mlp_training_step": mlp, "cnn_training_step": cnn,
              "tile_sweep": sweep,
              "targets": {"matmul_fraction_of_cublas_at_4096": 0.5,
                          "conv_fwd_bwd_ratio_to_cudnn": 3.0}}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
