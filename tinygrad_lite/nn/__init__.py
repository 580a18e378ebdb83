"""``tl.nn``: modules, parameters, initialisers and the functional interface."""

from . import functional, init
from .containers import ModuleList, Sequential
from .linear import Flatten, Identity, Linear
from .module import Module
from .parameter import Parameter

__all__ = ["functional", "init", "Module", "Parameter", "Sequential", "ModuleList", "Linear",
           "Identity", "Flatten"]
