"""shapes.pair: the one reader of int-or-pair arguments (conv/pool arguments, image sizes, ONNX attributes)."""
import numpy as np
import pytest

from minitl.shapes import pair


def test_pair_reads_ints_and_pairs_and_names_what_is_wrong():
    assert pair(3) == (3, 3) and pair((2, 5)) == (2, 5) and pair([1, 4]) == (1, 4)
    assert pair(np.int64(7)) == (7, 7) and pair(2.0) == (2, 2)
    assert all(type(v) is int for v in pair((np.int32(2), 3.0)))
    for bad in ((1, 2, 3), 2.5, "3", (1.5, 2), None):
        with pytest.raises(ValueError, match=r"stride must be an int or a pair of ints"):
            pair(bad, "stride")
    with pytest.raises(ValueError, match=r"padding must be >= 0, got \(0, -1\)"):
        pair((0, -1), "padding", 0)
