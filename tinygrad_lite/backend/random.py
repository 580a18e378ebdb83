"""The library's one source of randomness.

Every random draw in tinygrad_lite (weight initialisation, dropout masks, data
shuffling, ``tl.randn``) comes from the generator returned by :func:`get_rng`, so
``tl.manual_seed(n)`` makes a whole training run reproducible. Random numbers are
always drawn on the host, which also means a seeded model initialises to the same
weights on the CPU and on a GPU.
"""

import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Reset the global generator so every later random draw is reproducible."""
    global _rng
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed expects an int, got {type(seed).__name__}")
    _rng = np.random.default_rng(int(seed))


def get_rng() -> np.random.Generator:
    """The generator every random draw in the library uses."""
    return _rng
