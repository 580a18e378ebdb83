"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""

from __future__ import annotations

from .optimizer import Optimizer, state_tensor, subtract_


class RMSprop(Optimizer):
    """PyTorch's RMSprop. For each parameter p with gradient g:

        g = g + weight_decay * p
        s = alpha * s + (1 - alpha) * g^2             (square_avg)
        centered:  a = alpha * a + (1 - alpha) * g    (grad_avg)
                   d = sqrt(s - a^2) + eps            (an estimate of g's std deviation)
        else:      d = sqrt(s) + eps
        momentum > 0:  b = momentum * b + g / d,  p = p - lr * b
        else:          p = p - lr * g / d
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False):
        if lr < 0.0:
            raise ValueError(f"RMSprop: invalid learning rate {lr} (must be >= 0)")
        if alpha < 0.0:
            raise ValueError(f"RMSprop: invalid alpha {alpha} (must be >= 0)")
        if eps < 0.0 or momentum < 0.0 or weight_decay < 0.0:
            raise ValueError(f"RMSprop: eps, momentum and weight_decay must be >= 0, got "
                             f"{eps}, {momentum}, {weight_decay}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _update_group(self, group: dict) -> None:
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        weight_decay, momentum, centered = (group["weight_decay"], group["momentum"],
                                            group["centered"])
        for p in group["params"]:
            if p.grad is None:
                continue
            b = p.backend
            g = p.grad.data
            state = self.state.setdefault(p, {})
            if not state:
                state["step"] = 0
                state["square_avg"] = state_tensor(b.zeros(p.shape, p.dtype), p)
                if momentum > 0:
                    state["momentum_buffer"] = state_tensor(b.zeros(p.shape, p.dtype), p)
                if centered:
                    state["grad_avg"] = state_tensor(b.zeros(p.shape, p.dtype), p)
            state["step"] += 1
            if weight_decay != 0:
                g = b.add(g, b.mul(p.data, weight_decay))
            s = state["square_avg"]
            s.data = b.add(b.mul(s.data, alpha), b.mul(b.mul(g, g), 1.0 - alpha))
            if centered:
                a = state["grad_avg"]
                a.data = b.add(b.mul(a.data, alpha), b.mul(g, 1.0 - alpha))
                denominator = b.add(b.sqrt(b.sub(s.data, b.mul(a.data, a.data))), eps)
            else:
                denominator = b.add(b.sqrt(s.data), eps)
            if momentum > 0:
                buffer = state["momentum_buffer"]
                buffer.data = b.add(b.mul(buffer.data, momentum), b.div(g, denominator))
                subtract_(p, b.mul(buffer.data, lr))
            else:
                subtract_(p, b.mul(b.div(g, denominator), lr))
