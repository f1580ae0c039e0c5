"""ArrayDataset, .npz loading (no pickle), stratified subsets and held-out splits."""
import numpy as np
import pytest

from minitl.data import ArrayDataset, load_npz_dataset, open_data, stratified_subset, train_val_split


def _dataset(n_per_class=10, classes=3):
    labels = np.repeat(np.arange(classes), n_per_class)
    images = np.arange(len(labels) * 4, dtype=np.uint8).reshape(-1, 2, 2)
    return ArrayDataset(images, labels, [f"c{i}" for i in range(classes)])


def test_shape_checks_name_the_shapes():
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        ArrayDataset(np.zeros((4, 2, 2)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="images must have shape"):
        ArrayDataset(np.zeros((4, 2)), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="only 2 class names"):
        ArrayDataset(np.zeros((3, 2, 2)), np.array([0, 1, 2]), ["a", "b"])


def test_stratified_subset_counts_and_determinism():
    ds = _dataset(10, 3)
    sub = stratified_subset(ds, 4, seed=1)
    assert np.bincount(sub.targets).tolist() == [4, 4, 4]
    assert stratified_subset(ds, 4, seed=1).indices.tolist() == sub.indices.tolist()
    assert stratified_subset(ds, 4, seed=2).indices.tolist() != sub.indices.tolist()
    x, y = sub.get_batch([0, 5])
    np.testing.assert_array_equal(x[1], ds.images[sub.indices[5]])
    with pytest.raises(ValueError, match="has 10 samples, 11 asked"):
        stratified_subset(ds, 11)


def test_train_val_split_is_disjoint_and_stratified():
    ds = _dataset(10, 3)
    train, held = train_val_split(ds, 0.2, seed=0)
    assert set(train.indices) & set(held.indices) == set()
    assert len(train) + len(held) == 30
    assert np.bincount(held.targets).tolist() == [2, 2, 2]


def test_npz_with_splits_and_classes(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((6, 3, 3), np.uint8), y_train=np.array([0, 1, 2, 0, 1, 2]),
             x_test=np.ones((3, 3, 3), np.uint8), y_test=np.array([2, 1, 0]), classes=np.array(["a", "b", "c"]))
    splits = open_data(path)
    assert splits.classes == ["a", "b", "c"] and len(splits.train) == 6 and len(splits.test) == 3
    assert load_npz_dataset(path, "test").labels.tolist() == [2, 1, 0]


def test_npz_object_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object), y=np.array([0, 1]))
    with pytest.raises(ValueError, match="never unpickles"):
        load_npz_dataset(path)


def test_npz_missing_keys(tmp_path):
    path = tmp_path / "k.npz"
    np.savez(path, foo=np.zeros(3))
    with pytest.raises(ValueError, match="needs arrays x/images and y/labels; found keys"):
        load_npz_dataset(path)


def test_fingerprint_follows_content():
    a, b = _dataset(), _dataset()
    assert a.fingerprint() == b.fingerprint()
    b.images[0, 0, 0] += 1
    b._fingerprint = None
    assert a.fingerprint() != b.fingerprint()


def test_digits_source_holds_out_a_split():
    pytest.importorskip("sklearn")
    splits = open_data("digits", val_fraction=0.25)
    assert splits.train[0][0].shape == (8, 8) and len(splits.train) + len(splits.test) == 1797


def test_mirrored_dataset_appends_flipped_copies():
    from minitl.data import MirroredDataset

    ds = ArrayDataset(np.arange(12, dtype=np.uint8).reshape(3, 2, 2), [0, 1, 2])
    m = MirroredDataset(ds)
    assert len(m) == 6 and m.targets.tolist() == [0, 1, 2, 0, 1, 2]
    np.testing.assert_array_equal(m[4][0], [[5, 4], [7, 6]])  # image 1, columns reversed
    x, y = m.get_batch([4, 0])
    np.testing.assert_array_equal(x[0], [[5, 4], [7, 6]])
    np.testing.assert_array_equal(x[1], ds.images[0])
    assert m.fingerprint() != ds.fingerprint()
