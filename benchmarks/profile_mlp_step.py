"""Where a training step of the notes' digits MLP spends its time, part by part.

    python benchmarks/profile_mlp_step.py [--epochs 120] [--warmup 20]

The same loop as ``tl.train.fit`` (DataLoader, zero_grad + forward, loss, backward,
SGD step, ``loss.item()``) with a timer between the parts, on the 64-50-10 sigmoid
network, batch 100, BLAS at one thread. Prints microseconds per step for each part,
the median over the steps after the warm-up epochs, and writes
``benchmarks/results/mlp_step.json``. This is the breakdown quoted in
docs/performance.md; ``bench_mlp.py`` measures the totals.

A second table, the *overhead ladder*, trains the same network five ways, each adding
one layer of the library on top of the last, run in interleaved rounds (the fastest
round of each is kept, so a slow spell of the machine hits all of them alike):

1. plain numpy doing exactly the arithmetic our ops do (the same formulas, the same
   array shapes and layouts, the same class-range check): the floor for these ops;
2. the fused ops with autograd (``linear_activation``, ``linear``,
   ``softmax_cross_entropy``, ``backward``), parameters updated with plain numpy;
3. + ``optim.SGD``;
4. + the ``nn`` modules (``model(x)``);
5. + ``F.cross_entropy``'s argument checks: the full loop ``tl.train.fit`` runs;

and the notes' hand-written network for comparison.
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


def _numpy_same_ops(X_train, y_train, batch_size, seed):
    """One epoch function doing in plain numpy what our ops compute (float32)."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((50, 64)) * 0.1).astype(np.float32)
    b1 = np.zeros(50, np.float32)
    w2 = (rng.standard_normal((10, 50)) * 0.1).astype(np.float32)
    b2 = np.zeros(10, np.float32)
    ones_vector, ones_rows, means, positions = np.ones(10, np.float32), {}, {}, {}
    X = X_train.astype(np.float32)
    exp_limit = 88.72 - np.log(10) - 1  # (fused._relative_to_target's, float32, 10 classes)

    def sigmoid(z):  # the numpy backend's formula
        a = np.negative(z)
        with np.errstate(over="ignore"):
            np.exp(a, out=a)
        a += 1.0
        return np.reciprocal(a, out=a)

    def step(x, t):
        n = len(t)
        z1 = x @ w1.T                                                  # LinearActivation
        z1 += b1
        a = sigmoid(z1)
        z = a @ w2.T                                                   # LinearFunction
        z += b2
        if t.astype(np.uint64).max().item() >= 10:                     # SoftmaxCrossEntropy
            raise ValueError("class index out of range")
        at = positions.setdefault(n, np.arange(0, n * 10, 10)) + t    # flat i*C + t_i
        shifted = z - z.reshape(-1)[at].reshape(-1, 1)                 # z - z_t
        if not shifted.max().item() <= exp_limit:                      # (never, here)
            raise AssertionError("this rung mirrors the target-shift path only")
        e = np.exp(shifted)
        e.reshape(-1)[at] = 0                                          # the target set apart
        rest = e @ ones_vector                                         # S
        weights = means.setdefault(n, np.full(n, 1.0 / n, np.float32))
        loss = weights @ np.log1p(rest)                                # mean of log1p(S)
        scaled = np.float32(1.0) * (1.0 / n) / (rest + 1.0)           # backward
        grad = e * scaled.reshape(-1, 1)
        grad.reshape(-1)[at] = -(rest * scaled)
        ones = ones_rows.setdefault(n, np.ones(n, np.float32))
        grad_w2, grad_b2, grad_a = grad.T @ a, ones @ grad, grad @ w2
        grad_z = grad_a * (a * (1.0 - a))
        grad_w1, grad_b1 = grad_z.T @ x, ones @ grad_z
        for param, g in ((w1, grad_w1), (b1, grad_b1), (w2, grad_w2), (b2, grad_b2)):
            np.subtract(param, np.multiply(g, 1.0), out=param)                 # SGD, lr 1
        return loss.item()

    def epoch():
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch_size):
            batch = order[start:start + batch_size]
            step(X.take(batch, axis=0), y_train.take(batch, axis=0))

    return epoch


def overhead_ladder(epochs: int, rounds: int) -> dict:
    """Microseconds per step of the five rungs (see the module docstring), best round."""
    import bench_mlp
    from threadpoolctl import threadpool_limits

    import tinygrad_lite as tl
    import tinygrad_lite.nn.functional as F
    from tinygrad_lite import optim
    from tinygrad_lite.data import DataLoader, TensorDataset
    from tinygrad_lite.ops import fused

    X_train, _, y_train, _ = bench_mlp.EX.digits_split(seed=0)
    steps_per_epoch = -(-len(X_train) // 100)

    def setup():
        tl.manual_seed(0)
        model = bench_mlp.ours_model("float32")
        loader = DataLoader(TensorDataset(X_train.astype(np.float32), y_train),
                            batch_size=100, shuffle=True)
        return model, optim.SGD(model.parameters(), lr=bench_mlp.LR_MEAN), loader

    def rung(use_optimizer, use_modules, use_checks):
        def run():
            model, optimizer, loader = setup()
            hidden, output = model[0], model[2]
            params = list(model.parameters())
            for _ in range(epochs):
                for xb, yb in loader:
                    if use_optimizer:
                        optimizer.zero_grad()
                    else:
                        for param in params:
                            param.grad = None
                    if use_modules:
                        logits = model(xb)
                    else:
                        activations = fused.linear_activation(xb, hidden.weight, hidden.bias,
                                                              "sigmoid")
                        logits = fused.linear(activations, output.weight, output.bias)
                    loss = (F.cross_entropy(logits, yb) if use_checks
                            else fused.softmax_cross_entropy(logits, yb, "mean"))
                    loss.backward()
                    if use_optimizer:
                        optimizer.step()
                    else:
                        for param in params:
                            np.subtract(param.data, np.multiply(param.grad.data, 1.0),
                                        out=param.data)
                    loss.item()
        return run

    numpy_epoch = _numpy_same_ops(X_train, y_train, 100, seed=0)
    notes_data = bench_mlp.EX.digits_split(seed=0)
    rungs = [
        ("numpy, the same arithmetic as our ops", steps_per_epoch,
         lambda: [numpy_epoch() for _ in range(epochs)]),
        ("fused ops + autograd, numpy update", steps_per_epoch, rung(False, False, False)),
        ("+ optim.SGD", steps_per_epoch, rung(True, False, False)),
        ("+ nn modules: model(x)", steps_per_epoch, rung(True, True, False)),
        ("+ F.cross_entropy's checks (= fit's loop)", steps_per_epoch, rung(True, True, True)),
        ("the notes' hand-written network (float64)", len(X_train) // 100,
         lambda: bench_mlp.run_notes(notes_data, epochs)),
    ]
    best = [float("inf")] * len(rungs)
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(rounds):
            for index, (_, _, fn) in enumerate(rungs):
                start = time.perf_counter()
                fn()
                best[index] = min(best[index], time.perf_counter() - start)
    return {"epochs_per_round": epochs, "rounds": rounds,
            "us_per_step": {name: round(seconds / (epochs * steps) * 1e6, 1)
                            for (name, steps, _), seconds in zip(rungs, best)}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--ladder-epochs", type=int, default=20,
                        help="epochs per rung and round of the overhead ladder")
    parser.add_argument("--ladder-rounds", type=int, default=12)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "mlp_step.json")
    args = parser.parse_args(argv)
    result = measure(args.epochs, args.warmup)
    print(f"digits MLP 64-50-10, batch 100: microseconds per step, median of "
          f"{result['steps']} steps")
    print("| part of a step | us |\n|---|---:|")
    for part, us in result["us_per_step"].items():
        print(f"| {part} | {us:.1f} |")
    print(f"| sum of the medians | {result['total_us']:.1f} |")
    ladder = overhead_ladder(args.ladder_epochs, args.ladder_rounds)
    result["overhead_ladder"] = ladder
    print(f"\noverhead ladder: microseconds per step, fastest of {ladder['rounds']} "
          f"interleaved rounds of {ladder['epochs_per_round']} epochs")
    print("| rung | us per step | added |\n|---|---:|---:|")
    previous = None
    for name, us in ladder["us_per_step"].items():
        added = "" if previous is None or name.startswith("the notes") else f"{us - previous:+.1f}"
        print(f"| {name} | {us:.1f} | {added} |")
        previous = us
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
