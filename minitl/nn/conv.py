"""Conv2d: a bank of learned kernels, h_j = Σ_{i∈M_j} h_i * k_ij + b_j (the math is F.conv2d)."""
from __future__ import annotations

import numpy

from .. import functional as F
from ..shapes import pair
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


class Conv2d(Module):
    """2-D convolution layer with PyTorch's parameters, layout and initialisation.

    weight (out_channels, in_channels/groups, kH, kW), bias (out_channels,): Kaiming-uniform
    (a = √5) weight and U(±1/√fan_in) bias, fan_in = in_channels/groups · kH · kW.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, dtype=numpy.float32, device=None):
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "Conv2d: kernel_size", 1)
        self.stride = pair(stride, "Conv2d: stride", 1)
        self.padding = pair(padding, "Conv2d: padding", 0)
        self.dilation = pair(dilation, "Conv2d: dilation", 1)
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(numpy.empty(shape, dtype=dtype), device=device)
        self.bias = Parameter(numpy.empty(out_channels, dtype=dtype), device=device) if bias else None
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text
