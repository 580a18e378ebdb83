"""Global switches of the autograd engine: grad mode and anomaly detection.

Both are plain module-level flags rather than a config object, read on every op, and
changed only through context managers that always restore the previous value.
"""

from __future__ import annotations

import functools


class _State:
    grad_enabled = True
    anomaly_enabled = False
    backward_node = None  # under detect_anomaly: the node whose backward is running
    # How many in-place modifications of any tensor happened so far. While it has not
    # moved since a node saved its tensors, none of them can have changed: backward
    # then skips comparing their version counters one by one.
    inplace_count = 0


state = _State()


def is_grad_enabled() -> bool:
    return state.grad_enabled


class _GradMode:
    """Base for ``no_grad`` / ``enable_grad``: a context manager and a decorator."""

    enabled = True

    def __enter__(self):
        self._previous = state.grad_enabled
        state.grad_enabled = self.enabled
        return self

    def __exit__(self, *exc_info):
        state.grad_enabled = self._previous
        return False

    def __call__(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return function(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):  # noqa: N801 - named like PyTorch's
    """Record nothing inside: ops run on plain data and build no graph."""

    enabled = False


class enable_grad(_GradMode):  # noqa: N801
    """Re-enable recording inside a ``no_grad`` block."""

    enabled = True


class set_grad_enabled(_GradMode):  # noqa: N801
    """``with tl.set_grad_enabled(flag):`` records or not, depending on ``flag``."""

    def __init__(self, mode: bool):
        self.enabled = bool(mode)

    def __call__(self, function):
        raise TypeError("use set_grad_enabled as a context manager")


class detect_anomaly:  # noqa: N801
    """Raise at the first op whose output or gradient holds NaN or inf.

    While active, every op remembers the user's source line that created it, and the
    error names that op and line. It slows every op, so use it for debugging only.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def __enter__(self):
        self._previous = state.anomaly_enabled
        state.anomaly_enabled = self.enabled
        return self

    def __exit__(self, *exc_info):
        state.anomaly_enabled = self._previous
        return False
