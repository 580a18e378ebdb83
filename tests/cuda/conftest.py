"""Every test under tests/cuda is marked ``cuda`` and runs only where kernels can run.

That is a machine with a CUDA GPU, or any machine with the Numba CUDA simulator
switched on. The simulator must be chosen before numba is first imported, so set it
for the whole run::

    NUMBA_ENABLE_CUDASIM=1 pytest tests/cuda -q
"""

import os
from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def _cuda_status() -> tuple[bool, str]:
    """(usable, reason it is not)."""
    try:
        from numba import cuda
    except Exception as error:  # numba-cuda not installed
        return False, f"numba.cuda cannot be imported ({error}); pip install numba-cuda"
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return True, ""
    try:
        if cuda.is_available():
            return True, ""
    except Exception:
        pass
    return False, ("no CUDA GPU; run with NUMBA_ENABLE_CUDASIM=1 (set before numba is "
                   "imported) to test the kernels in the simulator")


def pytest_collection_modifyitems(config, items):
    usable, reason = _cuda_status()
    for item in items:
        if _HERE not in Path(str(item.fspath)).parents:
            continue
        item.add_marker(pytest.mark.cuda)
        if not usable:
            item.add_marker(pytest.mark.skip(reason=reason))
