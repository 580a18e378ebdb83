"""Fixtures for the training-loop tests: off-screen matplotlib, single-threaded BLAS and
the examples folder on ``sys.path`` (the tests reuse the examples' shared helpers)."""

import os
import sys

import matplotlib
import pytest

matplotlib.use("Agg")

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
if os.path.abspath(EXAMPLES) not in sys.path:
    sys.path.insert(0, os.path.abspath(EXAMPLES))


@pytest.fixture(autouse=True, scope="session")
def _single_threaded_blas():
    # Tiny matrices: BLAS threads only cost time (a lot of it on a busy 2-core machine).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="session")
def digits():
    import _common

    return _common.digits_split(seed=0)
