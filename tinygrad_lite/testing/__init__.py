"""``tl.testing``: check gradients and property-test your own ops.

* :func:`gradcheck` / :func:`gradgradcheck` compare autograd with finite differences;
* ``tl.testing.strategies`` draws shapes and tensors with hypothesis;
* :func:`check_function` runs both checks over many random draws in one call.

hypothesis is imported only when ``strategies`` or ``check_function`` is first used,
so gradcheck works without it.
"""

import importlib

from .gradcheck import GradcheckError, gradcheck, gradgradcheck

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck", "check_function", "strategies"]


def __getattr__(name):
    if name == "strategies":
        return importlib.import_module(".strategies", __name__)
    if name == "check_function":
        return importlib.import_module(".check", __name__).check_function
    raise AttributeError(f"module 'tinygrad_lite.testing' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
