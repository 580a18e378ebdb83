"""Finite-difference checks of analytic gradients (first and second order).

``gradcheck(fn, inputs)`` compares the gradients autograd computes for ``fn`` with
central differences ``(f(x + eps) - f(x - eps)) / (2 eps)`` in float64. For small
inputs it compares the *whole* Jacobian, element by element; for large ones it
compares the derivative along a few random directions, ``v^T J u``, which catches
any wrong element with probability 1 at a fraction of the cost.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Tensor, grad

#: Above this many (input elements x output elements) the check uses random directions.
FULL_JACOBIAN_LIMIT = 20_000


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one."""


def _as_tuple(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _differentiable(inputs):
    return [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]


def _evaluate(fn, inputs, position=None, host_value=None) -> list:
    """fn on ``inputs`` (one of them replaced by ``host_value``) as float64 arrays."""
    args = list(inputs)
    if position is not None:
        # Keep requires_grad: the function may differentiate internally (gradgradcheck).
        args[position] = Tensor(host_value, device=inputs[position].device,
                                requires_grad=inputs[position].requires_grad)
    outputs = _as_tuple(fn(*args))
    return [o.numpy().astype(np.float64) for o in outputs]


def _check_inputs(inputs, fn_name):
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"{fn_name}: input {i} is {t.dtype}; finite differences need "
                            "float64 inputs (use .double())")


def _close(analytic, numerical, atol, rtol):
    return np.abs(analytic - numerical) <= atol + rtol * np.abs(numerical)


def _fail(kind, input_index, element, analytic, numerical, output_index=None):
    where = f" of output {output_index}" if output_index is not None else ""
    raise GradcheckError(
        f"{kind} mismatch for input {input_index} at element {element}{where}:"
        f" analytic {analytic:.10g}, numerical {numerical:.10g}"
        f" (difference {abs(analytic - numerical):.3g})")


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              n_directions: int = 4, seed: int = 0, full: bool | None = None) -> bool:
    """Check ``fn``'s autograd gradients against central differences.

    ``fn`` takes the ``inputs`` (Tensors; those with ``requires_grad`` must be
    float64) and returns a Tensor or a tuple of Tensors. Returns True, or raises
    :class:`GradcheckError` naming the input, the element and both values.
    """
    inputs = _as_tuple(inputs)
    _check_inputs(inputs, "gradcheck")
    wanted = _differentiable(inputs)
    if not wanted:
        raise ValueError("gradcheck: no input requires grad")
    outputs = _as_tuple(fn(*inputs))
    outputs = [o for o in outputs if isinstance(o, Tensor) and o.is_floating_point()]
    hosts = {i: inputs[i].numpy().astype(np.float64) for i in wanted}
    n_in = sum(hosts[i].size for i in wanted)
    n_out = sum(o.size for o in outputs)
    if full is None:
        full = n_in * n_out <= FULL_JACOBIAN_LIMIT
    if full:
        _full_jacobian_check(fn, inputs, outputs, wanted, hosts, eps, atol, rtol)
    else:
        _directional_check(fn, inputs, outputs, wanted, hosts, eps, atol, rtol,
                           n_directions, seed)
    return True


def _vjp(outputs, inputs, wanted, cotangents):
    """Analytic v^T J for each wanted input (zeros where an input is unused)."""
    reached = [o for o, v in zip(outputs, cotangents) if o.requires_grad]
    seeds = [Tensor(v, dtype=o.dtype, device=o.device)
             for o, v in zip(outputs, cotangents) if o.requires_grad]
    if not reached:
        return [np.zeros(inputs[i].shape) for i in wanted]
    grads = grad(reached, [inputs[i] for i in wanted], grad_outputs=seeds,
                 retain_graph=True, allow_unused=True)
    result = []
    for i, g in zip(wanted, grads):
        if g is not None and g.shape != inputs[i].shape:
            raise GradcheckError(f"the gradient of input {i} has shape {g.shape}, "
                                 f"but the input has shape {inputs[i].shape}")
        if g is not None and g.dtype != inputs[i].dtype:
            raise GradcheckError(f"the gradient of input {i} has dtype {g.dtype}, "
                                 f"but the input has dtype {inputs[i].dtype}")
        result.append(np.zeros(inputs[i].shape) if g is None else g.numpy())
    return result


def _full_jacobian_check(fn, inputs, outputs, wanted, hosts, eps, atol, rtol):
    for out_index, out in enumerate(outputs):
        # Analytic Jacobian of this output, one row (one output element) at a time.
        rows = []
        for flat in range(out.size):
            cotangents = [np.zeros(o.shape) for o in outputs]
            cotangents[out_index].reshape(-1)[flat] = 1.0
            rows.append(_vjp(outputs, inputs, wanted, cotangents))
        for k, i in enumerate(wanted):
            base = hosts[i]
            for element in np.ndindex(base.shape) if base.shape else [()]:
                plus, minus = base.copy(), base.copy()
                plus[element] += eps
                minus[element] -= eps
                numerical = (_evaluate(fn, inputs, i, plus)[out_index]
                             - _evaluate(fn, inputs, i, minus)[out_index]) / (2 * eps)
                numerical = numerical.reshape(-1)
                for flat in range(out.size):
                    analytic = rows[flat][k][element]
                    if not _close(analytic, numerical[flat], atol, rtol):
                        _fail("gradient", i, element, analytic, numerical[flat], out_index)


def _directional_check(fn, inputs, outputs, wanted, hosts, eps, atol, rtol, n_dir, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n_dir):
        cotangents = [rng.standard_normal(o.shape) for o in outputs]
        analytic_rows = _vjp(outputs, inputs, wanted, cotangents)
        for k, i in enumerate(wanted):
            direction = rng.standard_normal(hosts[i].shape)
            analytic = float(np.sum(analytic_rows[k] * direction))
            plus = _evaluate(fn, inputs, i, hosts[i] + eps * direction)
            minus = _evaluate(fn, inputs, i, hosts[i] - eps * direction)
            numerical = float(sum(np.sum(v * (p - m)) for v, p, m
                                  in zip(cotangents, plus, minus)) / (2 * eps))
            if not _close(analytic, numerical, atol, rtol * max(1.0, np.sqrt(hosts[i].size))):
                _fail("directional derivative", i, "random direction", analytic, numerical)


def gradgradcheck(fn, inputs, grad_outputs=None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, seed: int = 0, **kwargs) -> bool:
    """Check second derivatives: gradcheck of the map (inputs, v) -> v^T J(inputs).

    The backward pass is recorded with ``create_graph=True`` and differentiated
    again, so this validates every backward formula's own backward.
    """
    inputs = _as_tuple(inputs)
    _check_inputs(inputs, "gradgradcheck")
    wanted = _differentiable(inputs)
    if not wanted:
        raise ValueError("gradgradcheck: no input requires grad")
    outputs = [o for o in _as_tuple(fn(*inputs)) if isinstance(o, Tensor)]
    rng = np.random.default_rng(seed)
    if grad_outputs is None:
        grad_outputs = [Tensor(rng.standard_normal(o.shape), requires_grad=True, device=o.device)
                        for o in outputs]
    grad_outputs = list(_as_tuple(grad_outputs))
    n_inputs = len(inputs)

    def first_derivative(*args):
        xs, vs = args[:n_inputs], args[n_inputs:]
        outs = [o for o in _as_tuple(fn(*xs)) if isinstance(o, Tensor)]
        pairs = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
        grads = grad([o for o, _ in pairs], [xs[i] for i in wanted],
                     grad_outputs=[v for _, v in pairs], create_graph=True, allow_unused=True)
        return tuple(g if g is not None else xs[i] * 0.0 for g, i in zip(grads, wanted))

    return gradcheck(first_derivative, tuple(inputs) + tuple(grad_outputs), eps=eps,
                     atol=atol, rtol=rtol, seed=seed, **kwargs)
