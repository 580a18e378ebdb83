"""The Numba CPU kernels (``tinygrad_lite.kernels.cpu``) against numpy/BLAS and PyTorch CPU.

    python benchmarks/bench_kernels.py          # tables + benchmarks/results/kernels.json
    python benchmarks/bench_kernels.py --quick  # smaller sizes and fewer repeats

Sections (each printed as a table, all saved in the JSON file):

1. ``matmul``: GFLOP/s of ``cpu.matmul`` vs ``numpy.matmul`` (OpenBLAS or whatever BLAS
   numpy links; ``threadpoolctl`` reports which kernel it runs) and ``torch.matmul``, for
   n = 128 ... 2048, float32 and float64.
2. ``conv``: forward, input-gradient and weight-gradient time of ``cpu.conv2d`` and its
   backward kernels vs the numpy im2col reference (``kernels.reference``, the numpy
   backend's implementation) and PyTorch, on the lecture notes' shapes: the digits CNN
   (batch 100, 1x8x8 -> 10 filters 3x3, padding 1) and the Keras CIFAR conv base
   (batch 64, 3x32x32 -> 32 filters 3x3; 32x15x15 -> 64 filters 3x3), float32.
3. ``alternating``: numpy matmul and a Numba ``prange`` kernel called in turn, against each
   alone, with the thread-pool handling of ``kernels.cpu`` and without it.
4. ``compile``: first-call (compile) time of each kernel in a fresh process with an empty
   Numba cache, and the same with the cache filled.
5. ``memory``: peak traced memory (``tracemalloc``) of one conv forward + backward.
6. ``digits_cnn_epoch``: one epoch of the notes' digits CNN with ``tl.nn`` vs PyTorch
   (skipped with a message until ``tinygrad_lite.nn.Conv2d`` exists).

PyTorch runs in a separate process so that its OpenMP thread pool cannot disturb the
other measurements (and the reverse). Times are the best of several rounds: on a shared
machine the best round is the least disturbed one; the load average is recorded.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from _common import format_table, machine_info, write_json  # noqa: E402

CONV_SHAPES = {  # name: (x shape, w shape, stride, padding)
    "digits 1x8x8 -> 10 (pad 1), batch 100": ((100, 1, 8, 8), (10, 1, 3, 3), 1, 1),
    "cifar 3x32x32 -> 32, batch 64": ((64, 3, 32, 32), (32, 3, 3, 3), 1, 0),
    "cifar 32x15x15 -> 64, batch 64": ((64, 32, 15, 15), (64, 32, 3, 3), 1, 0),
}


# ----------------------------------------------------------------------------- timing


def best_seconds(fn, min_time=0.2, rounds=5, max_reps=1000):
    """Seconds per call: the best of ``rounds`` rounds, each timing a batch of calls.

    The batch size is chosen so one round lasts about ``min_time / rounds`` (at least one
    call); a warm-up call comes first (it may compile or fault pages in).
    """
    start = time.perf_counter()
    fn()
    first = max(time.perf_counter() - start, 1e-7)
    reps = int(min(max_reps, max(1, min_time / rounds / first)))
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def settle():
    """Let the other library's worker threads finish spinning (OpenBLAS: ~0.1 s)."""
    time.sleep(0.3)


def random(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def run_worker(args, env=None, timeout=900):
    """Run this script with ``--worker ...`` in a fresh process; its JSON result.

    The worker gets this process's environment, minus a ``GOMP_SPINCOUNT`` that
    ``kernels.cpu`` set on import (so PyTorch runs with its own defaults), plus ``env``.
    """
    command = [sys.executable, os.path.abspath(__file__), "--worker"] + [str(a) for a in args]
    merged = dict(os.environ)
    cpu = sys.modules.get("tinygrad_lite.kernels.cpu")
    if cpu is not None and cpu.SET_GOMP_SPINCOUNT:
        merged.pop("GOMP_SPINCOUNT", None)
    merged.update(env or {})
    done = subprocess.run(command, env=merged, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_available():
    try:
        import importlib.util
        return importlib.util.find_spec("torch") is not None
    except ValueError:
        return False


# ------------------------------------------------------------------ 1. matmul GFLOP/s


def matmul_reps(n, quick):
    return dict(min_time=0.1 if quick else 0.4, rounds=2 if n >= 2048 else (3 if quick else 5))


def bench_matmul(sizes, quick):
    from tinygrad_lite.kernels import cpu

    results = [matmul_row(cpu, dtype, n, quick) for dtype in ("float32", "float64")
               for n in sizes]
    if torch_available():
        torch_rows = run_worker(["torch-matmul", int(quick)] + list(sizes))
        for row in results:
            key = f"{row['dtype']} {row['n']}"
            if key in torch_rows:
                row["torch_gflops"] = torch_rows[key]
    return results


def matmul_row(cpu, dtype, n, quick):
    """GFLOP/s of our matmul and numpy's on one ``n x n`` product."""
    a, b = random((n, n), dtype), random((n, n), dtype, seed=1)
    ours = best_seconds(lambda: cpu.matmul(a, b), **matmul_reps(n, quick))
    settle()
    blas = best_seconds(lambda: np.matmul(a, b), **matmul_reps(n, quick))
    settle()
    flops = 2.0 * n**3
    return {"dtype": dtype, "n": n, "ours_gflops": flops / ours / 1e9,
            "numpy_gflops": flops / blas / 1e9}


def torch_matmul_gflops(torch, dtype, n, quick):
    a = torch.from_numpy(random((n, n), dtype))
    b = torch.from_numpy(random((n, n), dtype, seed=1))
    return 2.0 * n**3 / best_seconds(lambda: torch.matmul(a, b), **matmul_reps(n, quick)) / 1e9


def worker_torch_matmul(quick, *sizes):
    import torch

    return {f"{dtype} {n}": torch_matmul_gflops(torch, dtype, n, quick)
            for dtype in ("float32", "float64") for n in sizes}


# ---------------------------------------------------------------------- 2. conv times


def conv_inputs(x_shape, w_shape, stride, padding):
    from tinygrad_lite.kernels import reference

    x, w = random(x_shape), random(w_shape, seed=1)
    grad_out = random(reference.conv2d(x, w, stride, padding).shape, seed=2)
    return x, w, grad_out


def conv_times(module, x, w, grad_out, stride, padding, quick):
    """Milliseconds of forward, input gradient, weight gradient of one kernel module."""
    kwargs = dict(min_time=0.1 if quick else 0.5, rounds=3 if quick else 5)
    forward = best_seconds(lambda: module.conv2d(x, w, stride, padding), **kwargs)
    grad_x = best_seconds(lambda: module.conv2d_backward_input(grad_out, w, x.shape, stride,
                                                               padding), **kwargs)
    grad_w = best_seconds(lambda: module.conv2d_backward_weight(grad_out, x, w.shape, stride,
                                                                padding), **kwargs)
    times = {"forward_ms": forward * 1e3, "grad_input_ms": grad_x * 1e3,
             "grad_weight_ms": grad_w * 1e3}
    times["total_ms"] = sum(times.values())
    return times


def bench_conv(quick):
    from tinygrad_lite.kernels import cpu, reference

    results = []
    for name, (x_shape, w_shape, stride, padding) in CONV_SHAPES.items():
        x, w, grad_out = conv_inputs(x_shape, w_shape, stride, padding)
        row = {"shape": name, "ours": conv_times(cpu, x, w, grad_out, stride, padding, quick)}
        settle()
        row["numpy_im2col"] = conv_times(reference, x, w, grad_out, stride, padding, quick)
        settle()
        results.append(row)
    if torch_available():
        torch_rows = run_worker(["torch-conv", int(quick)])
        for row in results:
            if row["shape"] in torch_rows:
                row["torch"] = torch_rows[row["shape"]]
    return results


def worker_torch_conv(quick):
    import torch
    import torch.nn.functional as F

    class TorchConv:
        """The three passes through PyTorch, with the kernel-module signatures."""

        @staticmethod
        def conv2d(x, w, stride, padding):
            return F.conv2d(x, w, stride=stride, padding=padding)

        @staticmethod
        def conv2d_backward_input(grad_out, w, x_shape, stride, padding):
            return torch.nn.grad.conv2d_input(x_shape, w, grad_out, stride, padding)

        @staticmethod
        def conv2d_backward_weight(grad_out, x, w_shape, stride, padding):
            return torch.nn.grad.conv2d_weight(x, w_shape, grad_out, stride, padding)

    out = {}
    for name, (x_shape, w_shape, stride, padding) in CONV_SHAPES.items():
        arrays = conv_inputs(x_shape, w_shape, stride, padding)
        x, w, grad_out = (torch.from_numpy(a) for a in arrays)
        out[name] = conv_times(TorchConv, x, w, grad_out, stride, padding, quick)
    return out


# ------------------------------------------------------------------- 2b. pooling times

POOL_SHAPES = {  # name: input shape; 2x2 windows, stride 2 (the notes' MaxPooling2D)
    "digits 10x8x8, batch 100": (100, 10, 8, 8),
    "cifar 32x30x30, batch 32": (32, 32, 30, 30),
    "cifar 64x13x13, batch 32": (32, 64, 13, 13),
}


def bench_pool(quick):
    """Milliseconds of max_pool2d forward and backward: Numba kernels vs the reference."""
    from tinygrad_lite.kernels import cpu, reference

    kwargs = dict(min_time=0.1 if quick else 0.3, rounds=3 if quick else 5)
    results = []
    for name, shape in POOL_SHAPES.items():
        row = {"shape": name}
        for label, module in (("ours", cpu), ("numpy", reference)):
            row[label] = pool_times(module, shape, kwargs)
            settle()
        results.append(row)
    return results


def pool_times(module, shape, kwargs):
    """Forward and backward milliseconds of one kernel module's 2x2 max pooling."""
    from tinygrad_lite.kernels import reference

    x = random(shape)
    out, indices = reference.max_pool2d(x, 2)
    grad_out = random(out.shape, seed=2)
    forward = best_seconds(lambda: module.max_pool2d(x, 2), **kwargs)
    backward = best_seconds(lambda: module.max_pool2d_backward(grad_out, indices, x.shape),
                            **kwargs)
    return {"forward_ms": forward * 1e3, "backward_ms": backward * 1e3}


# --------------------------------------------------------- 3. alternating thread pools


ALTERNATING_SETUPS = {  # name: environment of the worker process
    "as shipped (GOMP_SPINCOUNT=1000 set by kernels.cpu)": {},
    "as shipped + cpu.limit_blas_threads(1) for the whole run": {"BENCH_LIMIT_BLAS": "all"},
    "as shipped + OPENBLAS_THREAD_TIMEOUT=4 in the environment": {
        "OPENBLAS_THREAD_TIMEOUT": "4"},
    "no remedy: libgomp's default spin (GOMP_SPINCOUNT=300000)": {
        "GOMP_SPINCOUNT": "300000"},
    "no remedy + BLAS limited to 1 thread around each of our calls": {
        "GOMP_SPINCOUNT": "300000", "BENCH_LIMIT_BLAS": "per-call"},
    "OMP_WAIT_POLICY=PASSIVE instead": {"OMP_WAIT_POLICY": "PASSIVE"},
    "Numba 'workqueue' threading layer instead": {"NUMBA_THREADING_LAYER": "workqueue"},
}


def bench_alternating(quick):
    """numpy matmul then a Numba prange kernel, in a loop, under each thread-pool setup."""
    results = {}
    for name, env in ALTERNATING_SETUPS.items():
        results[name] = run_worker(["alternating", int(quick)], env=env)
    return results


def worker_alternating(quick):
    """GFLOP/s of numpy matmul, our matmul and our conv alone, and of each pair alternating.

    Each setting is measured in interleaved rounds (solo, solo, pair, repeat) so that a
    change in machine load hits all three alike; the best round of each is kept.
    """
    import numba

    from tinygrad_lite.kernels import cpu

    if os.environ.get("BENCH_LIMIT_BLAS") == "all":
        cpu.limit_blas_threads(1)
    elif os.environ.get("BENCH_LIMIT_BLAS") == "per-call":
        cpu = blas_limited(cpu)
    n = 512
    a, b = random((n, n)), random((n, n), seed=1)
    x, w, _ = conv_inputs(*CONV_SHAPES["cifar 32x15x15 -> 64, batch 64"])
    pairs = {"numpy matmul + our matmul": (lambda: np.matmul(a, b), lambda: cpu.matmul(a, b),
                                           2.0 * n**3, 2.0 * n**3),
             "numpy matmul + our conv2d": (lambda: np.matmul(a, b), lambda: cpu.conv2d(x, w),
                                           2.0 * n**3, 2.0 * x.shape[0] * 64 * 169 * 288)}
    out = {label: alternate(*pair, quick) for label, pair in pairs.items()}
    out["threading_layer"] = numba.threading_layer()
    return out


def blas_limited(module):
    """``module``'s matmul and conv2d, each run with BLAS limited to one thread."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()

    class Limited:
        @staticmethod
        def matmul(a, b):
            with controller.limit(limits=1, user_api="blas"):
                return module.matmul(a, b)

        @staticmethod
        def conv2d(x, w):
            with controller.limit(limits=1, user_api="blas"):
                return module.conv2d(x, w)

    return Limited


def alternate(numpy_call, our_call, numpy_flops, our_flops, quick):
    """Best seconds of numpy alone, ours alone and the pair, in interleaved rounds.

    Every batch of calls starts after a pause, so that "alone" really is alone: without
    it, a batch of our calls right after a batch of numpy calls would run next to
    OpenBLAS workers still polling from the numpy batch.
    """
    def pair():
        numpy_call()
        our_call()

    numpy_call(), our_call()
    reps = 5 if quick else 20
    best = {"numpy": float("inf"), "ours": float("inf"), "pair": float("inf")}
    for _ in range(3 if quick else 5):
        for key, fn in (("numpy", numpy_call), ("ours", our_call), ("pair", pair)):
            settle()  # each batch starts with the other pool's threads asleep
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            best[key] = min(best[key], (time.perf_counter() - start) / reps)
    return {
        "numpy_alone_gflops": numpy_flops / best["numpy"] / 1e9,
        "ours_alone_gflops": our_flops / best["ours"] / 1e9,
        "pair_alternating_gflops": (numpy_flops + our_flops) / best["pair"] / 1e9,
        # 1.0: the pair takes exactly as long as the two calls alone; target >= 0.8
        "efficiency": (best["numpy"] + best["ours"]) / best["pair"],
    }


# ------------------------------------------------------------------ 4. compile times


def bench_compile():
    """First-call times in fresh processes: an empty Numba cache, then the filled one."""
    with tempfile.TemporaryDirectory() as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        cold = run_worker(["first-calls"], env=env)
        warm = run_worker(["first-calls"], env=env)
    return {"empty_cache": cold, "filled_cache": warm}


def worker_first_calls():
    """Seconds of each public kernel's first call (float32), minus its second call."""
    start = time.perf_counter()
    from tinygrad_lite.kernels import cpu
    out = {"import kernels.cpu (numba)": time.perf_counter() - start}
    from tinygrad_lite.kernels import reference

    x, w = random((2, 3, 8, 8)), random((4, 3, 3, 3), seed=1)
    grad_out = random((2, 4, 8, 8), seed=2)
    pooled, indices = reference.max_pool2d(x, 2)
    wide, long_k = cpu.WIDE_M + 8, cpu.SHORT_K
    calls = {
        "matmul, small (outer-product GEMM)": lambda: cpu.matmul(random((8, 8)),
                                                                 random((8, 8))),
        "matmul, wide C + long k (pack + inner-product GEMM)": lambda: cpu.matmul(
            random((8, long_k)), random((long_k, wide))),
        "conv2d": lambda: cpu.conv2d(x, w, 1, 1),
        "conv2d_backward_input": lambda: cpu.conv2d_backward_input(grad_out, w, x.shape, 1, 1),
        "conv2d_backward_weight": lambda: cpu.conv2d_backward_weight(grad_out, x, w.shape, 1, 1),
        "max_pool2d": lambda: cpu.max_pool2d(x, 2),
        "max_pool2d_backward": lambda: cpu.max_pool2d_backward(pooled, indices, x.shape),
        "avg_pool2d": lambda: cpu.avg_pool2d(x, 2),
        "avg_pool2d_backward": lambda: cpu.avg_pool2d_backward(pooled, x.shape, 2),
    }
    for name, call in calls.items():
        start = time.perf_counter()
        call()
        first = time.perf_counter() - start
        start = time.perf_counter()
        call()
        out[name] = first - (time.perf_counter() - start)
    out["total"] = sum(out.values())
    return out


# -------------------------------------------------------------------------- 5. memory


def peak_traced_mb(fn):
    """Peak memory traced by ``tracemalloc`` during ``fn()`` (numpy registers its buffers)."""
    fn()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def conv_step(module, x, w, grad_out, stride, padding):
    """Forward and both backward passes of one kernel module."""
    module.conv2d(x, w, stride, padding)
    module.conv2d_backward_input(grad_out, w, x.shape, stride, padding)
    module.conv2d_backward_weight(grad_out, x, w.shape, stride, padding)


def bench_memory():
    from tinygrad_lite.kernels import cpu, reference

    out = {}
    for name, (x_shape, w_shape, stride, padding) in CONV_SHAPES.items():
        x, w, grad_out = conv_inputs(x_shape, w_shape, stride, padding)
        row = {label + "_peak_mb": peak_traced_mb(functools.partial(
            conv_step, module, x, w, grad_out, stride, padding))
            for label, module in (("ours", cpu), ("numpy_im2col", reference))}
        row["inputs_mb"] = (x.nbytes + w.nbytes + grad_out.nbytes) / 2**20
        out[name] = row
    try:
        import resource
        out["process_max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:  # pragma: no cover - not on Windows
        pass
    return out


# ------------------------------------------------------------- 6. digits CNN epoch


def digits_cnn_data(batches=15, batch_size=100):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    count = batches * batch_size
    return x[:count], y[:count], batch_size


def bench_digits_cnn_epoch():
    """One epoch (15 batches of 100) of the notes' digits CNN, ``tl.nn`` vs PyTorch CPU.

    Network: Conv2d(1, 10, 3, padding=1) + ReLU + MaxPool2d(2) + Flatten + Linear(160, 50)
    + ReLU + Linear(50, 10), cross-entropy, SGD(lr=0.1), float32. Skipped (with a message)
    until ``tinygrad_lite.nn.Conv2d`` exists.
    """
    try:
        import tinygrad_lite as tl
        from tinygrad_lite.nn import Conv2d, MaxPool2d  # noqa: F401 - the availability check
    except ImportError as error:
        message = f"skipped: tinygrad_lite.nn.Conv2d is not importable yet ({error})"
        print(message)
        return {"skipped": message}
    x, y, batch_size = digits_cnn_data()
    out = {}
    backends = ["numpy"]
    try:
        tl.set_backend("numba")
        backends.append("numba")
    except ValueError:
        pass
    finally:
        tl.set_backend("numpy")
    for backend in backends:
        tl.set_backend(backend)
        try:
            out[f"tinygrad_lite ({backend} backend) ms"] = best_seconds(
                lambda: _tl_epoch(tl, x, y, batch_size), min_time=1.0, rounds=3) * 1e3
        finally:
            tl.set_backend("numpy")
    if torch_available():
        out.update(run_worker(["torch-digits-cnn"]))
    return out


def _tl_epoch(tl, x, y, batch_size):
    from tinygrad_lite import nn, optim

    tl.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 10, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(160, 50), nn.ReLU(), nn.Linear(50, 10))
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    for start in range(0, len(x), batch_size):
        optimizer.zero_grad()
        loss = loss_fn(model(tl.Tensor(x[start:start + batch_size])), y[start:start + batch_size])
        loss.backward()
        optimizer.step()


def worker_torch_digits_cnn():
    import torch
    from torch import nn

    x, y, batch_size = digits_cnn_data()
    x, y = torch.from_numpy(x), torch.from_numpy(y)

    def epoch():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 10, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(160, 50), nn.ReLU(), nn.Linear(50, 10))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loss_fn = nn.CrossEntropyLoss()
        for start in range(0, len(x), batch_size):
            optimizer.zero_grad()
            loss_fn(model(x[start:start + batch_size]), y[start:start + batch_size]).backward()
            optimizer.step()

    return {"torch ms": best_seconds(epoch, min_time=1.0, rounds=3) * 1e3}


# ------------------------------------------------------------------------ reporting


def blas_description():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: info.get(k) for k in ("internal_api", "version", "architecture",
                                      "threading_layer", "num_threads")}
            for info in threadpool_info() if info.get("user_api") == "blas"]


def print_tables(report):
    def ratio(a, b):
        return f"{a / b:.2f}" if a and b else "-"

    rows = [[r["dtype"], r["n"], f"{r['ours_gflops']:.1f}", f"{r['numpy_gflops']:.1f}",
             ratio(r["ours_gflops"], r["numpy_gflops"]),
             f"{r['torch_gflops']:.1f}" if "torch_gflops" in r else "-",
             ratio(r["ours_gflops"], r.get("torch_gflops"))] for r in report["matmul"]]
    print("\nmatmul, GFLOP/s (higher is better)")
    print(format_table(["dtype", "n", "ours", "numpy/BLAS", "ours/BLAS", "torch",
                        "ours/torch"], rows))

    rows = [[r["shape"], pass_name, f"{r['ours'][key]:.3f}", f"{r['numpy'][key]:.3f}",
             ratio(r["numpy"][key], r["ours"][key])]
            for r in report["pool"] for pass_name, key in (("forward", "forward_ms"),
                                                           ("backward", "backward_ms"))]
    if rows:
        print("\nmax_pool2d 2x2, float32, ms (lower is better; speed-up = numpy / ours)")
        print(format_table(["shape", "pass", "ours", "numpy reference", "speed-up"], rows))

    rows = []
    for r in report["conv"]:
        for part in ("forward_ms", "grad_input_ms", "grad_weight_ms", "total_ms"):
            ours, ref = r["ours"][part], r["numpy_im2col"][part]
            torch_ms = r.get("torch", {}).get(part)
            rows.append([r["shape"], part[:-3], f"{ours:.2f}", f"{ref:.2f}", ratio(ref, ours),
                         f"{torch_ms:.2f}" if torch_ms else "-", ratio(torch_ms, ours)])
    print("\nconv2d float32, milliseconds (speed-up columns: baseline time / ours)")
    print(format_table(["shape", "pass", "ours", "numpy im2col", "speed-up", "torch",
                        "vs torch"], rows))

    rows = []
    for setup, result in report["alternating"].items():
        if "error" in result:
            rows.append([setup, "error: " + result["error"], "", "", "", ""])
            continue
        for pair, r in result.items():
            if isinstance(r, dict):
                rows.append([setup + f" [{result['threading_layer']}]", pair,
                             f"{r['numpy_alone_gflops']:.1f}", f"{r['ours_alone_gflops']:.1f}",
                             f"{r['pair_alternating_gflops']:.1f}", f"{r['efficiency']:.2f}"])
    print("\nalternating numpy / Numba thread pools, GFLOP/s; efficiency = "
          "(t_numpy + t_ours) / t_pair, target >= 0.8")
    print(format_table(["setup", "pair", "numpy alone", "ours alone", "alternating",
                        "efficiency"], rows))

    if "compile" in report:
        cold, warm = report["compile"]["empty_cache"], report["compile"]["filled_cache"]
        rows = [[name, f"{seconds:.2f}", f"{warm.get(name, float('nan')):.2f}"]
                for name, seconds in cold.items() if isinstance(seconds, float)]
        print("\nfirst call in a fresh process, seconds (compile + load)")
        print(format_table(["kernel", "empty cache", "filled cache"], rows))

    if "memory" in report:
        rows = [[name, f"{r['inputs_mb']:.1f}", f"{r['ours_peak_mb']:.1f}",
                 f"{r['numpy_im2col_peak_mb']:.1f}"]
                for name, r in report["memory"].items() if isinstance(r, dict)]
        print("\npeak traced memory of conv forward + both backwards, MiB")
        print(format_table(["shape", "inputs", "ours", "numpy im2col"], rows))

    print("\ndigits CNN, one epoch of 15 batches of 100:", report.get("digits_cnn_epoch"))


def best_of_runs(section, runs):
    """Merge repeated runs of a section, keeping the best value of every number.

    Throughputs keep their maximum, times their minimum. The alternating section keeps,
    per setup, the whole run whose solo speeds were highest (its efficiency is not
    picked on its own).
    """
    if len(runs) == 1:
        return runs[0]
    if section == "matmul":
        merged = runs[0]
        for row_index, row in enumerate(merged):
            for key in row:
                if key.endswith("_gflops"):
                    row[key] = max(run[row_index].get(key, 0.0) for run in runs)
        return merged
    if section == "pool":
        merged = runs[0]
        for row_index, row in enumerate(merged):
            for impl in ("ours", "numpy"):
                for part in ("forward_ms", "backward_ms"):
                    row[impl][part] = min(run[row_index][impl][part] for run in runs)
        return merged
    if section == "conv":
        merged = runs[0]
        for row_index, row in enumerate(merged):
            for impl, times in row.items():
                if not isinstance(times, dict):
                    continue
                for part in ("forward_ms", "grad_input_ms", "grad_weight_ms"):
                    times[part] = min(run[row_index][impl][part] for run in runs)
                times["total_ms"] = times["forward_ms"] + times["grad_input_ms"] + \
                    times["grad_weight_ms"]
        return merged
    if section == "alternating":
        def solo_speed(result):
            return sum(r["numpy_alone_gflops"] + r["ours_alone_gflops"]
                       for r in result.values() if isinstance(r, dict))
        return {setup: max((run[setup] for run in runs if "error" not in run[setup]),
                           key=solo_speed, default=runs[0][setup]) for setup in runs[0]}
    if section == "digits_cnn_epoch":
        merged = dict(runs[0])
        for key, value in merged.items():
            if isinstance(value, float):
                merged[key] = min(run[key] for run in runs)
        return merged
    return runs[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--out", default="kernels", help="results file name or path")
    parser.add_argument("--runs", type=int, default=1,
                        help="repeat the timed sections and keep each number's best run "
                             "(on a shared machine: the least disturbed one)")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["matmul", "conv", "pool", "alternating", "compile",
                                 "memory", "digits"], help="sections to leave out")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        name, rest = args.worker[0], [int(v) for v in args.worker[1:]]
        workers = {"torch-matmul": worker_torch_matmul, "torch-conv": worker_torch_conv,
                   "alternating": worker_alternating, "first-calls": worker_first_calls,
                   "torch-digits-cnn": worker_torch_digits_cnn}
        print(json.dumps(workers[name](*rest)))
        return

    import numba

    sizes = (128, 256, 512, 1024) if args.quick else (128, 256, 512, 1024, 2048)
    report = {"machine": machine_info(), "quick": args.quick, "blas": blas_description(),
              "numba": numba.__version__, "numba_threads": numba.config.NUMBA_NUM_THREADS,
              "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}
    report["runs"] = args.runs
    sections = [("matmul", lambda: bench_matmul(sizes, args.quick), args.runs),
                ("conv", lambda: bench_conv(args.quick), args.runs),
                ("pool", lambda: bench_pool(args.quick), args.runs),
                ("alternating", lambda: bench_alternating(args.quick), args.runs),
                ("compile", bench_compile, 1), ("memory", bench_memory, 1),
                ("digits", bench_digits_cnn_epoch, args.runs)]
    for name, section, runs in sections:
        if name not in args.skip:
            print(f"running {name} ...", flush=True)
            key = "digits_cnn_epoch" if name == "digits" else name
            report[key] = best_of_runs(key, [section() for _ in range(runs)])
    try:
        report["numba_threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel kernel ran in this process
        report["numba_threading_layer"] = None
    report["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    print_tables({"matmul": [], "conv": [], "pool": [], "alternating": {}, **report})
    write_json(args.out, report)


if __name__ == "__main__":
    main()
