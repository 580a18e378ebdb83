"""``nn.Module``: a tree of layers that owns parameters, buffers and sub-modules.

Assigning a :class:`Parameter` or a ``Module`` to an attribute registers it, so
``parameters()``, ``state_dict()``, ``to()`` and ``train()/eval()`` reach the whole
tree. Names follow PyTorch (``"0.weight"``, ``"encoder.bias"``) so weights move
between the two frameworks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from ..autograd.mode import no_grad
from ..autograd.tensor import Tensor
from ..backend import get_backend
from .parameter import Parameter


class Module:
    """Base class of every layer and model: subclass it and define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ registration
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call "
                                 "super().__init__() before assigning attributes")
        if name in self._buffers and (value is None or isinstance(value, Tensor)) \
                and not isinstance(value, Parameter):
            self._buffers[name] = value  # re-assigning a buffer keeps it a buffer
            object.__setattr__(self, name, value)
            return
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter({name!r}): expected a Parameter, got "
                            f"{type(param).__name__}")
        self.__setattr__(name, param)
        if param is None:
            self._parameters[name] = None

    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        """A tensor that is part of the state (saved, moved with ``to``) but not trained."""
        self.__setattr__(name, tensor)
        self._buffers[name] = tensor

    def add_module(self, name: str, module: Module | None) -> None:
        self.__setattr__(name, module)
        if module is None:
            self._modules[name] = None

    # ----------------------------------------------------------------- forward
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # --------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = "", memo=None):
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry_name: str, prefix: str = "", recurse: bool = True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry_name).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        """``(name, Parameter)`` pairs; a parameter shared by two layers appears once."""
        yield from self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True):
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    def apply(self, fn) -> Module:
        """Call ``fn(module)`` on every sub-module and on self (children first)."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active, batch norm uses batch statistics)."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad = param.grad * 0.0

    def requires_grad_(self, flag: bool = True) -> Module:
        for param in self.parameters():
            param.requires_grad = flag
        return self

    # -------------------------------------------------------------- state dict
    def state_dict(self) -> OrderedDict:
        """Every parameter and buffer by its dotted name (the tensors themselves)."""
        state = OrderedDict()
        for prefix, module in self.named_modules():
            for registry in (module._parameters, module._buffers):
                for name, value in registry.items():
                    if value is not None:
                        state[f"{prefix}.{name}" if prefix else name] = value
        return state

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values (Tensors or numpy arrays) into the parameters and buffers.

        Everything is validated first; a missing or unexpected key (when ``strict``) or
        a shape mismatch raises naming the key, and then nothing has been changed.
        Returns ``(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict for {type(self).__name__}: expected a dict of "
                            f"name -> array (e.g. tl.load(path)), got {type(state_dict).__name__}")
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(f"load_state_dict for {type(self).__name__}: " + "; ".join(parts))
        updates = []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            host = value.numpy() if isinstance(value, Tensor) else value
            try:
                source = Tensor(host, dtype=target.dtype, device=target.device) \
                    if not isinstance(value, Tensor) or value.device != target.device \
                    else value.astype(target.dtype)
            except (TypeError, ValueError) as error:
                raise TypeError(f"load_state_dict for {type(self).__name__}: key {key!r} holds "
                                f"a {type(value).__name__} that cannot be converted to a "
                                f"{target.dtype} array ({error})") from None
            if source.shape != target.shape:
                raise ValueError(f"load_state_dict for {type(self).__name__}: key {key!r} has "
                                 f"shape {source.shape} in the checkpoint but {target.shape} "
                                 "in the model")
            updates.append((target, source))
        with no_grad():
            for target, source in updates:
                target.copy_(source)
        return missing, unexpected

    # ----------------------------------------------------------- device, dtype
    def _convert(self, convert) -> Module:
        for module in self.modules():
            for registry in (module._parameters, module._buffers):
                for value in registry.values():
                    if value is None:
                        continue
                    value.data, value.backend = convert(value.data, value.backend)
                    if value.grad is not None:
                        value.grad.data, value.grad.backend = convert(
                            value.grad.data, value.grad.backend)
        return self

    def to(self, device: str | None = None, dtype=None) -> Module:
        """Move parameters and buffers to ``device`` (in place: optimisers keep working)."""
        if isinstance(device, str) and not device.startswith(("cpu", "cuda")):
            dtype, device = device, None  # module.to("float64")
        if device is not None:
            target = get_backend(device)

            def move(data, backend):
                if backend.device == target.device:
                    return data, backend
                return target.from_host(backend.to_host(data)), target
            self._convert(move)
        if dtype is not None:
            def cast(data, backend):
                if backend.is_floating(data.dtype):
                    return backend.astype(data, backend.dtype(dtype)), backend
                return data, backend
            self._convert(cast)
        return self

    def float(self) -> Module:
        return self.to(dtype="float32")

    def double(self) -> Module:
        return self.to(dtype="float64")

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self) -> Module:
        return self.to("cuda")

    # ------------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"  ({name}): " + repr(module).replace("\n", "\n  ")
                 for name, module in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"
