"""EfficientNet-Lite0 in plain PyTorch, on the .pth file's own names (independent of minitl's model).

The reference of tests/models/test_efficientnet.py (logits parity) and of benchmarks/efficientnet.py
(the whole network's images/s against PyTorch).  Built from the reference builder's stage table;
TensorFlow's "SAME" padding (uneven: the extra pixel after) as an explicit pad before each conv.
"""
from __future__ import annotations

import math

STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))  # from the reference builder


def load_state(path):
    """The file's floating-point arrays as float32 torch tensors (torch's own loader, weights only)."""
    import torch  # noqa: PLC0415

    return {k: v.float() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()
            if v.dtype.is_floating_point}


def torch_lite0(state):
    """forward(x) for x (N, 3, 224, 224): the ImageNet logits (N, 1000)."""
    import torch  # noqa: PLC0415
    tf = torch.nn.functional

    def same_conv(x, weight, stride, groups=1):
        k = weight.shape[-1]
        pads = []
        for size in (x.shape[3], x.shape[2]):
            total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
            pads += [total // 2, total - total // 2]
        return tf.conv2d(tf.pad(x, pads), weight, None, stride, 0, 1, groups)

    def bn(x, prefix):
        return tf.batch_norm(x, state[prefix + ".running_mean"], state[prefix + ".running_var"],
                             state[prefix + ".weight"], state[prefix + ".bias"], False, 0.0, 1e-3)

    def forward(x):
        x = tf.relu6(bn(same_conv(x, state["_conv_stem.weight"], 2), "_bn0"))
        index = 0
        for repeats, kernel, stride, expansion, c_in, c_out in STAGES:
            for r in range(repeats):
                p, inputs = f"_blocks.{index}.", x
                if expansion != 1:
                    x = tf.relu6(bn(same_conv(x, state[p + "_expand_conv.weight"], 1), p + "_bn0"))
                w = state[p + "_depthwise_conv.weight"]
                x = tf.relu6(bn(same_conv(x, w, stride if r == 0 else 1, groups=w.shape[0]), p + "_bn1"))
                x = bn(same_conv(x, state[p + "_project_conv.weight"], 1), p + "_bn2")
                if (stride if r == 0 else 1) == 1 and (c_in if r == 0 else c_out) == c_out:
                    x = x + inputs
                index += 1
        x = tf.relu6(bn(same_conv(x, state["_conv_head.weight"], 1), "_bn1"))
        return tf.linear(x.mean(dim=(2, 3)), state["_fc.weight"], state["_fc.bias"])

    return forward


def depthwise_shapes(size: int = 224):
    """Every depthwise layer of Lite0 at ``size``: [(channels, input size, kernel, stride, count)], in order."""
    shapes, spatial = [], math.ceil(size / 2)  # after the stride-2 stem
    for repeats, kernel, stride, expansion, c_in, c_out in STAGES:
        for r in range(repeats):
            s = stride if r == 0 else 1
            key = ((c_in if r == 0 else c_out) * expansion, spatial, kernel, s)
            if shapes and shapes[-1][:4] == key:
                shapes[-1] = (*key, shapes[-1][4] + 1)
            else:
                shapes.append((*key, 1))
            spatial = math.ceil(spatial / s)
    return shapes
