"""Stochastic gradient descent, with optional momentum, Nesterov momentum, weight decay."""

from __future__ import annotations

from .optimizer import Optimizer, state_tensor, subtract_


class SGD(Optimizer):
    """PyTorch's SGD. For each parameter p with gradient g:

        g = g + weight_decay * p                         (L2 regularisation, lambda)
        b = g                                            (first step)
        b = momentum * b + (1 - dampening) * g           (later steps)
        g = g + momentum * b  if nesterov  else  b       (when momentum != 0)
        p = p - lr * g

    Without momentum this is the lecture notes' plain update ``w -= eta * dC/dw``.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        if lr < 0.0:
            raise ValueError(f"SGD: invalid learning rate {lr} (must be >= 0)")
        if momentum < 0.0:
            raise ValueError(f"SGD: invalid momentum {momentum} (must be >= 0)")
        if weight_decay < 0.0:
            raise ValueError(f"SGD: invalid weight_decay {weight_decay} (must be >= 0)")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      nesterov=nesterov, weight_decay=weight_decay))

    def _update_group(self, group: dict) -> None:
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        dampening, nesterov = group["dampening"], group["nesterov"]
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            b = p.backend
            g = grad.data
            if weight_decay != 0:
                g = b.add(g, b.mul(p.data, weight_decay))
            if momentum != 0:
                state = self.state.setdefault(p, {})
                buffer = state.get("momentum_buffer")
                if buffer is None:
                    buffer = state["momentum_buffer"] = state_tensor(b.copy(g), p)
                else:
                    buffer.data = b.add(b.mul(buffer.data, momentum), b.mul(g, 1.0 - dampening))
                g = b.add(g, b.mul(buffer.data, momentum)) if nesterov else buffer.data
            subtract_(p, b.mul(g, lr))
