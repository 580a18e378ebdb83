"""Small helpers shared by the benchmarks: timing, machine description, a plain-text table
and the JSON results file.

    from _common import machine_info, print_table, time_call, write_json
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")


def time_call(fn, repeats: int = 3, warmup: int = 0) -> dict:
    """Run ``fn()`` ``repeats`` times; the fastest wall and CPU time, and the last result.

    CPU time (``time.process_time``, all threads of this process) is reported next to the
    wall time because on a shared machine other processes stretch the wall time; the
    minimum over repeats is the least disturbed run (as ``timeit`` recommends).
    """
    for _ in range(warmup):
        fn()
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return {"wall_s": float(min(walls)), "cpu_s": float(min(cpus)), "result": result}


def median_step_us(step, n: int, warmup: int = 20) -> float:
    """Median wall time of one call of ``step()`` in microseconds, over ``n`` calls."""
    for _ in range(warmup):
        step()
    times = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        step()
        times[i] = time.perf_counter() - start
    return float(np.median(times) * 1e6)


def machine_info() -> dict:
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "platform": platform.platform(), "processor": platform.processor() or "unknown",
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__}
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        pass
    return info


def format_table(headers, rows) -> str:
    """A plain-text (also valid Markdown) table; numbers are formatted by the caller."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])


def print_table(headers, rows) -> str:
    text = format_table(headers, rows)
    print(text)
    return text


def write_json(name_or_path: str, payload: dict) -> str:
    """Write ``payload`` to ``benchmarks/results/<name>.json`` (or to a given path)."""
    path = name_or_path if os.sep in name_or_path else os.path.join(RESULTS_DIR,
                                                                     name_or_path + ".json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(payload, handle, indent=2, default=float)
        handle.write("\n")
    print(f"wrote {path}")
    return path
