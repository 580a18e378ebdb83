"""Containers: ``Sequential`` (a pipeline) and ``ModuleList`` (an indexable list)."""

from __future__ import annotations

from collections import OrderedDict

from .module import Module


class Sequential(Module):
    """Apply the layers in order: ``Sequential(Linear(64, 50), Sigmoid(), Linear(50, 10))``.

    Layers are named ``"0"``, ``"1"``, ... (or by an ``OrderedDict``'s keys), as in PyTorch.
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], OrderedDict):
            for name, layer in layers[0].items():
                self.add_module(name, layer)
        else:
            for index, layer in enumerate(layers):
                if not isinstance(layer, Module):
                    raise TypeError(f"Sequential: argument {index} is a "
                                    f"{type(layer).__name__}, not a Module")
                self.add_module(str(index), layer)

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, layer: Module) -> Sequential:
        self.add_module(str(len(self._modules)), layer)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered (a plain list's are not)."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList holds Modules, got {type(module).__name__}")
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index):
        items = list(self._modules.values())
        return ModuleList(items[index]) if isinstance(index, slice) else items[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward: iterate over its modules")
