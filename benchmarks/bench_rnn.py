"""Forward + backward time of one batch through LSTM and GRU layers, vs PyTorch (CPU).

The lecture notes' extrapolation networks use 250 hidden units on a 1-feature series;
this times ``LSTM(1, 250)`` and ``GRU(1, 250)`` at batch 16 for a short (2 steps, the
notes' windows) and a longer (50 steps) sequence, in float32:

    python benchmarks/bench_rnn.py            # prints a table, writes benchmarks/results/rnn.json
    python benchmarks/bench_rnn.py --repeats 50

Rows ``fused`` are the layers as shipped (one graph node per time step); rows
``reference`` unroll the same layers with plain Tensor ops (``layer.fused = False``),
to show what the fused steps buy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite.nn.rnn import GRU, LSTM

HERE = os.path.dirname(os.path.abspath(__file__))


def _best_time(step, repeats: int, warmup: int = 3) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the fastest of ``repeats`` runs, as timeit does.

    CPU time (``time.process_time``) is reported too because on a shared machine other
    processes stretch the wall time of a run; with one BLAS thread the CPU time is the
    work this process did.
    """
    for _ in range(warmup):
        step()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return float(np.min(walls)), float(np.min(cpus))


def time_tinygrad(kind: str, seq: int, batch: int, hidden: int, repeats: int,
                  fused: bool = True) -> tuple[float, float]:
    tl.manual_seed(0)
    layer = {"LSTM": LSTM, "GRU": GRU}[kind](1, hidden)
    layer.fused = fused
    x = tl.Tensor(np.random.default_rng(0).standard_normal((batch, seq, 1)).astype(np.float32))

    def step():
        layer.zero_grad()
        output, _ = layer(x)
        output.sum().backward()

    return _best_time(step, repeats)


def time_torch(kind: str, seq: int, batch: int, hidden: int, repeats: int):
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    layer = getattr(torch.nn, kind)(1, hidden, batch_first=True)
    x = torch.tensor(np.random.default_rng(0).standard_normal((batch, seq, 1)).astype(np.float32))

    def step():
        layer.zero_grad()
        output, _ = layer(x)
        output.sum().backward()

    return _best_time(step, repeats)


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS / torch threads for both frameworks (default 1: small "
                             "matmuls gain nothing from threads, and a busy machine makes "
                             "multi-threaded BLAS timings erratic)")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "rnn.json"))
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(args.threads):
        return _run(args)


def _run(args) -> list:
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        pass

    rows = []
    header = (f"{'layer':<6}{'seq':>5}{'variant':>11}{'ours ms':>9}{'torch ms':>10}"
              f"{'ratio':>7}{'ours cpu ms':>13}{'torch cpu ms':>14}{'cpu ratio':>11}")
    print(header)
    print("-" * len(header))
    for kind in ("LSTM", "GRU"):
        for seq in (2, 50):
            reference = time_torch(kind, seq, args.batch, args.hidden, args.repeats)
            for fused in (True, False):
                ours = time_tinygrad(kind, seq, args.batch, args.hidden, args.repeats, fused)
                row = {"layer": f"{kind}(1->{args.hidden})", "batch": args.batch, "seq": seq,
                       "variant": "fused" if fused else "reference",
                       "tinygrad_lite_ms": ours[0] * 1e3, "tinygrad_lite_cpu_ms": ours[1] * 1e3,
                       "torch_ms": None, "torch_cpu_ms": None, "ratio": None, "cpu_ratio": None}
                if reference is not None:
                    row.update(torch_ms=reference[0] * 1e3, torch_cpu_ms=reference[1] * 1e3,
                               ratio=ours[0] / reference[0],
                               cpu_ratio=ours[1] / max(reference[1], 1e-9))
                rows.append(row)

                def fmt(value, width, digits=2):
                    return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"
                print(f"{kind:<6}{seq:>5}{row['variant']:>11}{fmt(row['tinygrad_lite_ms'], 9)}"
                      f"{fmt(row['torch_ms'], 10)}{fmt(row['ratio'], 7)}"
                      f"{fmt(row['tinygrad_lite_cpu_ms'], 13)}{fmt(row['torch_cpu_ms'], 14)}"
                      f"{fmt(row['cpu_ratio'], 11)}")
    print("ratio = tinygrad_lite / PyTorch (forward + backward of one batch, float32, best of "
          f"{args.repeats}, {args.threads} thread(s)); cpu = process CPU time")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump({"benchmark": "rnn forward+backward per batch", "dtype": "float32",
                   "threads": args.threads, "load_average": os.getloadavg(),
                   "machine": platform.platform(), "cpus": os.cpu_count(),
                   "rows": rows}, handle, indent=2)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
