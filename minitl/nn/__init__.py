"""Modules: parameters wired to functional ops (PyTorch's names, so knowledge carries over)."""
from . import init
from .conv import Conv2d
from .layers import (
    GELU, Dropout, Flatten, Identity, LeakyReLU, Linear, ModuleDict, ModuleList, ReLU, ReLU6, Sequential, Sigmoid, Softmax, Tanh,
)
from .embedding import Embedding
from .module import LoadReport, Module, Parameter, StateDictError
from .multitask import MultiTask
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .rnn import GRU, LSTM, RNN, RNNBase
from .transformer import MultiheadAttention, TransformerEncoderLayer
from .utils import clip_grad_norm_

__all__ = [
    "Module", "Parameter", "LoadReport", "StateDictError", "init",
    "Linear", "Sequential", "ModuleList", "ModuleDict", "MultiTask", "ReLU", "ReLU6", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "Softmax",
    "Dropout", "Flatten", "Identity",
    "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d",
    "RNNBase", "RNN", "LSTM", "GRU",
    "Embedding", "LayerNorm", "MultiheadAttention", "TransformerEncoderLayer",
    "clip_grad_norm_",
]
