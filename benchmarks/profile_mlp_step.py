"""Where a training step of the notes' digits MLP spends its time, part by part.

    python benchmarks/profile_mlp_step.py [--epochs 120] [--warmup 20]

The same loop as ``tl.train.fit`` (DataLoader, zero_grad + forward, loss, backward,
SGD step, ``loss.item()``) with a timer between the parts, on the 64-50-10 sigmoid
network, batch 100, BLAS at one thread. Prints microseconds per step for each part,
the median over the steps after the warm-up epochs, and writes
``benchmarks/results/mlp_step.json``. This is the breakdown quoted in
docs/performance.md; ``bench_mlp.py`` measures the totals.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

PARTS = ("next batch", "zero_grad + forward", "cross-entropy", "backward", "SGD step",
         "loss.item()")


def measure(epochs: int, warmup: int) -> dict:
    import bench_mlp
    from threadpoolctl import threadpool_limits

    import tinygrad_lite as tl
    import tinygrad_lite.nn.functional as F
    from tinygrad_lite import optim
    from tinygrad_lite.data import DataLoader, TensorDataset

    X_train, _, y_train, _ = bench_mlp.EX.digits_split(seed=0)
    clock = time.perf_counter_ns
    with threadpool_limits(limits=1, user_api="blas"):
        tl.manual_seed(0)
        model = bench_mlp.ours_model("float32")
        optimizer = optim.SGD(model.parameters(), lr=bench_mlp.LR_MEAN)
        loader = DataLoader(TensorDataset(X_train.astype(np.float32), y_train),
                            batch_size=100, shuffle=True)
        samples = []
        for epoch in range(epochs):
            batches = iter(loader)
            while True:
                t0 = clock()
                try:
                    xb, yb = next(batches)
                except StopIteration:
                    break
                gc.disable()  # as fit does during a step
                t1 = clock()
                optimizer.zero_grad()
                output = model(xb)
                t2 = clock()
                loss = F.cross_entropy(output, yb)
                t3 = clock()
                loss.backward()
                t4 = clock()
                optimizer.step()
                t5 = clock()
                loss.item()
                gc.enable()
                t6 = clock()
                if epoch >= warmup:
                    samples.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5))
    # The median of each part over the steps: a step interrupted by the machine's other
    # work (a VM is never quiet) moves it far less than it moves a mean.
    per_step = np.median(np.array(samples), axis=0) / 1000.0
    steps = len(samples)
    return {"steps": steps, "us_per_step": dict(zip(PARTS, per_step.round(2).tolist())),
            "total_us": round(float(per_step.sum()), 2)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "mlp_step.json")
    args = parser.parse_args(argv)
    result = measure(args.epochs, args.warmup)
    print(f"digits MLP 64-50-10, batch 100: microseconds per step, median of "
          f"{result['steps']} steps")
    print("| part of a step | us |\n|---|---:|")
    for part, us in result["us_per_step"].items():
        print(f"| {part} | {us:.1f} |")
    print(f"| sum of the medians | {result['total_us']:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
