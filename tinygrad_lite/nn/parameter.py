"""``nn.Parameter``: a Tensor that a Module registers as trainable."""

from __future__ import annotations

from ..autograd.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad; assigning one to a Module attribute registers it.

    ``Parameter(tensor)`` shares the tensor's data (no copy), like PyTorch.
    """

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = Tensor([])
        if isinstance(data, Tensor):
            self.data, self.backend = data.data, data.backend
            self._requires_grad = False
            self.grad = None
            self._node = None
            self._out_index = 0
            self._version_box = None
            self._share_version_with(data)  # the same memory, so the same counter
            self._hooks = None
            self._retains_grad = False
            self.name = None
        else:
            super().__init__(data)
        if not self.is_floating_point():
            raise TypeError(f"a Parameter must be floating point, got {self.dtype}")
        self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
