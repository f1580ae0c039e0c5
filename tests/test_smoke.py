import numpy as np

import minitl
import minitl.functional as F
from minitl import nn


def test_two_layer_network_matches_hand_written_forward_and_backward():
    """h = relu(W1 x + b1), y = W2 h + b2, J = mean((y - t)^2); gradients written out by hand."""
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    l1, l2 = nn.Linear(3, 5, dtype=np.float64), nn.Linear(5, 2, dtype=np.float64)
    loss = F.mse_loss(l2(F.relu(l1(minitl.Tensor(x)))), minitl.Tensor(t))
    loss.backward()

    W1, b1, W2, b2 = (p.data for p in (l1.weight, l1.bias, l2.weight, l2.bias))
    a = x @ W1.T + b1
    h = np.maximum(a, 0)
    y = h @ W2.T + b2
    dy = 2 * (y - t) / y.size
    dW2 = dy.T @ h
    dh = dy @ W2
    da = dh * (a > 0)
    dW1 = da.T @ x
    assert np.isclose(loss.item(), np.mean((y - t) ** 2))
    np.testing.assert_allclose(l2.weight.grad.numpy(), dW2, rtol=1e-10)
    np.testing.assert_allclose(l1.weight.grad.numpy(), dW1, rtol=1e-10)
    np.testing.assert_allclose(l1.bias.grad.numpy(), da.sum(0), rtol=1e-10)
