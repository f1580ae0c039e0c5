"""Modules: parameters wired to functional ops (PyTorch's names, so knowledge carries over)."""
from . import init
from .layers import (
    GELU, Dropout, Flatten, Identity, LeakyReLU, Linear, ModuleList, ReLU, Sequential, Sigmoid, Softmax, Tanh,
)
from .module import LoadReport, Module, Parameter, StateDictError

__all__ = [
    "Module", "Parameter", "LoadReport", "StateDictError", "init",
    "Linear", "Sequential", "ModuleList", "ReLU", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "Softmax",
    "Dropout", "Flatten", "Identity",
]
