"""``tl.nn``: modules, parameters, initialisers and the functional interface."""

from . import functional, init, utils
from .activation import ELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .batchnorm import BatchNorm1d
from .containers import ModuleList, Sequential
from .conv import AvgPool2d, BatchNorm2d, Conv2d, MaxPool2d
from .dropout import Dropout
from .linear import Flatten, Identity, Linear
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module
from .parameter import Parameter
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = ["functional", "init", "utils", "Module", "Parameter", "Sequential", "ModuleList",
           "Linear", "Identity", "Flatten", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d",
           "Dropout", "BatchNorm1d", "ReLU", "Sigmoid",
           "Tanh", "LeakyReLU", "ELU", "Softmax", "LogSoftmax", "MSELoss",
           "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "RNN", "LSTM",
           "GRU", "RNNCell", "LSTMCell", "GRUCell"]
