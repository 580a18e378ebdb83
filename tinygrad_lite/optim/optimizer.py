"""``Optimizer``: the base class of every update rule.

An optimiser owns *parameter groups*: dicts holding a list of ``"params"`` and the
hyperparameters used for them (``lr``, ``momentum``, ...), so different layers may use
different settings. ``self.state[param]`` holds each parameter's running quantities
(momentum buffers, moment estimates, step counts).

``step()`` updates every parameter *in place* (the model keeps the same Parameter
objects, only their values change) and without recording a graph. The updates are
written with the backend's primitive operations on raw arrays (``backend.mul``,
``backend.add``, ...), never with numpy directly, so the same code runs on every
backend and device, and no Tensor or graph bookkeeping is paid per operation.

``state_dict()`` / ``load_state_dict()`` use PyTorch's structure::

    {"state": {0: {"step": 3, "exp_avg": <tensor>, ...}, 1: {...}},
     "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), ..., "params": [0, 1]}]}

where parameters are numbered in the order the groups list them. It survives
``tl.save``/``tl.load`` (which give numpy arrays back).
"""

from __future__ import annotations

import numbers

from ..autograd.mode import enable_grad, state
from ..autograd.tensor import Tensor


def assign_(param: Tensor, data) -> None:
    """Overwrite ``param``'s values with the array ``data`` in place.

    In place matters: the Module and any other holder of the Parameter see the new
    values. The version bump lets autograd detect a graph that saved the old values.
    """
    param.backend.setitem(param.data, Ellipsis, data)
    param._bump_version()


def subtract_(param: Tensor, step) -> None:
    """``param -= step`` in place (``step`` a raw array): every optimiser's last line.

    With the backend's optional in-place ``sub_`` (numpy's ``out=``) this is a single
    pass over the parameter; otherwise ``assign_(param, param - step)``.
    """
    backend = param.backend
    sub_ = getattr(backend, "sub_", None)
    if sub_ is None:
        assign_(param, backend.sub(param.data, step))
        return
    sub_(param.data, step)
    param._bump_version()


def state_tensor(data, like: Tensor) -> Tensor:
    """Wrap a raw array as a state Tensor on ``like``'s backend (outside any graph)."""
    return Tensor._make(data, like.backend)


class Optimizer:
    """Base class: holds parameter groups and per-parameter state; subclasses define
    ``_update_group(group)``, which updates the parameters of one group."""

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors "
                            "or of dicts (e.g. model.parameters()), got a single Tensor")
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list: did you pass "
                             "model.parameters() of a model without parameters, or an "
                             "exhausted generator?")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    # ----------------------------------------------------------------- groups
    def add_param_group(self, group: dict) -> None:
        """Add a dict ``{"params": [...], **hyperparameters}``; unset ones get the defaults."""
        if not isinstance(group, dict):
            raise TypeError(f"a parameter group must be a dict, got {type(group).__name__}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimise Tensors, got "
                                f"{type(p).__name__}")
            if not p.is_floating_point():
                raise TypeError(f"{type(self).__name__}: cannot optimise a {p.dtype} tensor")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: can't optimise a non-leaf tensor "
                                 f"(shape {p.shape}); optimise the leaves it was computed from")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: a parameter (shape {p.shape}) appears "
                                 "in more than one parameter group or twice in one")
            seen.add(id(p))
        new_group = dict(self.defaults)
        new_group.update(group)
        new_group["params"] = params
        self.param_groups.append(new_group)

    # ------------------------------------------------------------------- step
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``None`` (the default, cheapest) or zeros in place."""
        for group in self.param_groups:
            if set_to_none:
                for p in group["params"]:
                    p.grad = None
                continue
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.zero_()

    def step(self, closure=None):
        """One update of every parameter that has a gradient.

        ``closure`` (optional) re-evaluates the model and returns the loss; it is called
        with gradients enabled, and the loss is returned.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        # What ``with no_grad():`` does, without creating a context-manager object on
        # every step: the updates must not be recorded.
        previous, state.grad_enabled = state.grad_enabled, False
        try:
            for group in self.param_groups:
                self._update_group(group)
        finally:
            state.grad_enabled = previous
        return loss

    def _update_group(self, group: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------- state dict
    def state_dict(self) -> dict:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}``.

        State tensors are copies, so the dict is a snapshot that later steps do not change.
        """
        index: dict = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = {
                        k: v._private_copy() if isinstance(v, Tensor) else v
                        for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a ``state_dict()`` (also one read back with ``tl.load``).

        The groups must list as many parameters as this optimiser's; everything is
        checked first, so a failed load changes nothing.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict \
                or "state" not in state_dict:
            raise KeyError(f"{name}.load_state_dict: expected a dict with keys 'state' and "
                           "'param_groups' (from optimizer.state_dict())")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state has {len(saved_groups)} "
                             f"parameter groups, this optimiser {len(self.param_groups)}")
        params_by_index = {}
        new_groups = []
        for number, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            saved_indices = list(saved["params"])
            if len(saved_indices) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: group {number} has "
                                 f"{len(saved_indices)} parameters in the state, "
                                 f"{len(group['params'])} in this optimiser")
            for saved_index, p in zip(saved_indices, group["params"]):
                params_by_index[int(saved_index)] = p
            new_group = {k: _python_value(v) for k, v in saved.items() if k != "params"}
            new_group["params"] = group["params"]
            new_groups.append(new_group)
        new_state = {}
        for key, values in dict(state_dict["state"]).items():
            if int(key) not in params_by_index:
                raise KeyError(f"{name}.load_state_dict: state for parameter {key!r}, which no "
                               "parameter group lists")
            p = params_by_index[int(key)]
            new_state[p] = {k: self._state_value(k, v, p, key) for k, v in values.items()}
        self.param_groups = new_groups
        self.state = new_state

    def _state_value(self, key: str, value, param: Tensor, index):
        """A loaded state entry: ``step`` as a Python number, arrays as Tensors on the
        parameter's device and in its dtype (checked against the parameter's shape)."""
        if key == "step":
            return _python_value(value)
        source = value if isinstance(value, Tensor) else Tensor(value)
        if source.device != param.device:
            source = source.to(param.device)
        tensor = Tensor(source, dtype=param.dtype)  # always a private copy
        if tensor.shape != param.shape:
            raise ValueError(f"{type(self).__name__}.load_state_dict: state {key!r} of "
                             f"parameter {index} has shape {tensor.shape}, the parameter "
                             f"{param.shape}")
        return tensor

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for number, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {number}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"


def _python_value(value):
    """numpy scalars and 0-d arrays -> Python numbers; lists -> tuples (e.g. betas)."""
    if isinstance(value, Tensor):
        value = value.numpy()
    if hasattr(value, "ndim") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return tuple(_python_value(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_python_value(v) for v in value)
    return value
