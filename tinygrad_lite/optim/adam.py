"""Adam and AdamW: per-parameter step sizes from running moments of the gradient."""

from __future__ import annotations

import math

from .optimizer import Optimizer, assign_, state_tensor


def _check(name, lr, betas, eps, weight_decay):
    if lr < 0.0:
        raise ValueError(f"{name}: invalid learning rate {lr} (must be >= 0)")
    if eps < 0.0:
        raise ValueError(f"{name}: invalid eps {eps} (must be >= 0)")
    if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
        raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas}")
    if weight_decay < 0.0:
        raise ValueError(f"{name}: invalid weight_decay {weight_decay} (must be >= 0)")


class Adam(Optimizer):
    """PyTorch's Adam. At step t, for each parameter p with gradient g:

        g = g + weight_decay * p                  (L2 penalty in the gradient)
        m = beta1 * m + (1 - beta1) * g           (first moment: mean of g)
        v = beta2 * v + (1 - beta2) * g^2         (second moment: mean of g^2)
        v_max = max(v_max, v)  and use v_max for v   (amsgrad only)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    The divisions by (1 - beta^t) correct the bias of m and v towards their zero start.
    """

    decoupled_weight_decay = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False):
        _check(type(self).__name__, lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad))

    def _update_group(self, group: dict) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
        for p in group["params"]:
            if p.grad is None:
                continue
            b = p.backend
            g = p.grad.data
            state = self.state.setdefault(p, {})
            if not state:
                state["step"] = 0
                state["exp_avg"] = state_tensor(b.zeros(p.shape, p.dtype), p)
                state["exp_avg_sq"] = state_tensor(b.zeros(p.shape, p.dtype), p)
                if amsgrad:
                    state["max_exp_avg_sq"] = state_tensor(b.zeros(p.shape, p.dtype), p)
            state["step"] += 1
            t = state["step"]
            data = p.data
            if weight_decay != 0:
                if self.decoupled_weight_decay:  # AdamW: shrink p itself
                    data = b.mul(data, 1.0 - lr * weight_decay)
                else:                            # Adam: L2 term in the gradient
                    g = b.add(g, b.mul(data, weight_decay))
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m.data = b.add(b.mul(m.data, beta1), b.mul(g, 1.0 - beta1))
            v.data = b.add(b.mul(v.data, beta2), b.mul(b.mul(g, g), 1.0 - beta2))
            second = v.data
            if amsgrad:
                v_max = state["max_exp_avg_sq"]
                v_max.data = b.maximum(v_max.data, v.data)
                second = v_max.data
            step_size = lr / (1.0 - beta1 ** t)
            denominator = b.add(b.div(b.sqrt(second), math.sqrt(1.0 - beta2 ** t)), eps)
            assign_(p, b.sub(data, b.mul(b.div(m.data, denominator), step_size)))


class AdamW(Adam):
    """Adam with *decoupled* weight decay (Loshchilov & Hutter), as PyTorch's AdamW:

        p = p * (1 - lr * weight_decay)           (before the Adam step, not in g)

    then the Adam update above without the L2 term. Default weight_decay 1e-2.
    """

    decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
