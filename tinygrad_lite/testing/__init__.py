"""``tl.testing``: check gradients and property-test your own ops.

* :func:`gradcheck` / :func:`gradgradcheck` compare autograd with finite differences;
* ``tl.testing.strategies`` draws shapes and tensors with hypothesis;
* :func:`check_function` runs both checks over many random draws in one call.
"""

from .gradcheck import GradcheckError, gradcheck, gradgradcheck

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]
