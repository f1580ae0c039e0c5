"""Zero padding (uneven, as TensorFlow's "SAME") against numpy.pad, its gradient, and the SAME rule by hand."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minitl.functional as F
from _opcheck import DTYPES, arrays, assert_forward, check_grad, floats, tensor, with_backend


@with_backend
@given(dtype=DTYPES, data=st.data(), pads=st.tuples(*[st.integers(0, 3)] * 4))
def test_pad2d_matches_numpy_pad(backend, dtype, data, pads):
    x = data.draw(arrays(dtype, (2, 3, 4, 5), floats()))
    left, right, top, bottom = pads
    expected = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    assert_forward(F.pad2d(tensor(x), pads), expected, dtype)
    check_grad(lambda t: F.pad2d(t, pads), x)


@pytest.mark.parametrize("size, kernel, stride, expected", [
    (224, 3, 2, (0, 1)),   # out 112: (111·2 + 3) − 224 = 1, the extra pixel after
    (56, 5, 2, (1, 2)),    # out 28: 27·2 + 5 − 56 = 3
    (14, 3, 1, (1, 1)),
    (14, 5, 1, (2, 2)),
    (7, 1, 1, (0, 0)),
    (113, 3, 2, (1, 1)),   # odd size: out 57, 56·2 + 3 − 113 = 2
])
def test_same_padding_is_tensorflows_rule(size, kernel, stride, expected):
    assert F.same_padding(size, kernel, stride) == expected


def test_pad2d_refuses_negative_or_wrong_length():
    x = tensor(np.zeros((1, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="4 non-negative ints"):
        F.pad2d(x, (1, -1, 0, 0))
    with pytest.raises(ValueError, match="4 non-negative ints"):
        F.pad2d(x, (1, 1))
