"""DataLoader: batching, shuffling, drop_last, determinism, background prefetching."""
import numpy as np
import pytest

from minitl.data import ArrayDataset, DataLoader


def _ds(n=10):
    return ArrayDataset(np.arange(n * 4, dtype=np.float32).reshape(n, 2, 2), np.arange(n) % 3)


def _labels_of(batches):
    return [y.tolist() for _, y in batches]


def test_batches_cover_the_dataset_in_order():
    loader = DataLoader(_ds(10), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), _ds(10).images)


def test_drop_last():
    loader = DataLoader(_ds(10), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(y) for _, y in loader] == [4, 4]


def test_shuffle_is_a_permutation_new_each_epoch_and_repeatable():
    ds = _ds(10)
    ds.labels = np.arange(10)
    loader = DataLoader(ds, batch_size=3, shuffle=True, seed=1)
    first = np.concatenate([y for _, y in loader])
    second = np.concatenate([y for _, y in loader])
    assert sorted(first.tolist()) == list(range(10)) and first.tolist() != second.tolist()
    again = DataLoader(ds, batch_size=3, shuffle=True, seed=1)
    again.set_epoch(1)
    assert np.concatenate([y for _, y in again]).tolist() == second.tolist()


def test_transform_randomness_depends_only_on_seed_epoch_batch():
    def noisy(image, rng):
        return image + rng.random()

    a = DataLoader(_ds(6), batch_size=2, transform=noisy, seed=3)
    b = DataLoader(_ds(6), batch_size=2, transform=noisy, seed=3, prefetch=2)
    a.set_epoch(4)
    b.set_epoch(4)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_prefetch_matches_plain_iteration():
    plain = list(DataLoader(_ds(11), batch_size=3, shuffle=True, seed=2))
    pre = list(DataLoader(_ds(11), batch_size=3, shuffle=True, seed=2, prefetch=3))
    assert _labels_of(plain) == _labels_of(pre)


def test_prefetch_reraises_worker_errors():
    def broken(image, rng):
        raise RuntimeError("bad sample")

    with pytest.raises(RuntimeError, match="bad sample"):
        list(DataLoader(_ds(4), batch_size=2, transform=broken, prefetch=1))


def test_prefetch_early_break_stops_the_worker():
    loader = DataLoader(_ds(50), batch_size=1, prefetch=2)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    import threading
    assert not any(t.name == "minitl-prefetch" and t.is_alive() for t in threading.enumerate())


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(_ds(), batch_size=0)
