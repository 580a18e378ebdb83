"""Adagrad: step sizes shrink with the accumulated squared gradient of each weight."""

from __future__ import annotations

from .optimizer import Optimizer, state_tensor, subtract_


class Adagrad(Optimizer):
    """PyTorch's Adagrad. At step t, for each parameter p with gradient g:

        g = g + weight_decay * p
        lr_t = lr / (1 + (t - 1) * lr_decay)
        s = s + g^2                       (s starts at initial_accumulator_value)
        p = p - lr_t * g / (sqrt(s) + eps)
    """

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10):
        if lr < 0.0 or lr_decay < 0.0 or weight_decay < 0.0 or eps < 0.0 \
                or initial_accumulator_value < 0.0:
            raise ValueError(f"Adagrad: lr, lr_decay, weight_decay, "
                             f"initial_accumulator_value and eps must be >= 0, got {lr}, "
                             f"{lr_decay}, {weight_decay}, {initial_accumulator_value}, {eps}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))

    def add_param_group(self, group: dict) -> None:
        """As the base class, and create the accumulators at once: PyTorch's Adagrad
        does, so its state_dict lists them before the first step."""
        super().add_param_group(group)
        added = self.param_groups[-1]
        for p in added["params"]:
            self.state[p] = {"step": 0, "sum": state_tensor(p.backend.full(
                p.shape, added["initial_accumulator_value"], p.dtype), p)}

    def _update_group(self, group: dict) -> None:
        lr, lr_decay, eps = group["lr"], group["lr_decay"], group["eps"]
        weight_decay = group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            b = p.backend
            g = p.grad.data
            state = self.state[p]
            state["step"] += 1
            if weight_decay != 0:
                g = b.add(g, b.mul(p.data, weight_decay))
            clr = lr / (1.0 + (state["step"] - 1) * lr_decay)
            s = state["sum"]
            s.data = b.add(s.data, b.mul(g, g))
            subtract_(p, b.mul(b.div(g, b.add(b.sqrt(s.data), eps)), clr))
