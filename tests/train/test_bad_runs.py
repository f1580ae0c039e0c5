"""Runs meeting broken state (issue 10): a damaged newest checkpoint, temporaries of a killed run,
NaN/Inf weights after an epoch's last step, NaN/Inf in the data of either split."""
import os
import subprocess
import sys

import numpy as np
import pytest

from minitl.data import ArrayDataset, DataSplits
from minitl.fileio import remove_stale_temporaries
from minitl.train import checkpoint as ck
from minitl.train import TrainConfig, Trainer, TrainingDiverged
from minitl.train.features import FeatureCache
from minitl.train.loop import NonFiniteData
from train_helpers import make_model, make_splits, spec_of


def _trainer(model, splits, tmp_path, name="run", log=None, **config):
    defaults = dict(mode="features", epochs=2, batch_size=8, lr=0.05, prefetch=0)
    defaults.update(config)
    return Trainer(model, splits, spec_of(model), TrainConfig(**defaults), out_dir=tmp_path / name,
                   cache_dir=tmp_path / "cache", show_progress=False, **({"log": log} if log else {}))


def test_checkpoint_keeps_the_previous_one_and_falls_back_to_it(tmp_path):
    path = tmp_path / "checkpoint.npz"
    for epoch in (1, 2, 3):
        ck.save_checkpoint(path, {"epoch": epoch, "w": np.full(3, float(epoch))})
    assert ck.load_checkpoint(path)["epoch"] == 3 and ck.load_checkpoint(tmp_path / "checkpoint.prev.npz")["epoch"] == 2
    data = path.read_bytes()
    messages = []
    for damaged in (data[: len(data) // 2], data[:100] + bytes([data[100] ^ 0x10]) + data[101:]):
        path.write_bytes(damaged)  # truncated; one flipped bit (the zip CRC catches it)
        with pytest.raises(ck.CheckpointError, match="not a readable minitl checkpoint"):
            ck.load_checkpoint(path)
        tree, used = ck.load_latest_checkpoint(path, log=messages.append)
        assert tree["epoch"] == 2 and used.endswith("checkpoint.prev.npz") and np.array_equal(tree["w"], [2.0] * 3)
    assert len(messages) == 2 and "falling back to the previous checkpoint" in messages[0]
    (tmp_path / "checkpoint.prev.npz").write_bytes(b"PK\x03\x04 nothing")
    with pytest.raises(ck.CheckpointError, match="no usable checkpoint"):
        ck.load_latest_checkpoint(path)


def test_resume_after_a_bit_flip_uses_the_checkpoint_before(tmp_path):
    splits, lines = make_splits(), []
    _trainer(make_model(), splits, tmp_path, epochs=3).fit()
    path = tmp_path / "run" / "checkpoint.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    result = _trainer(make_model(seed=5), splits, tmp_path, epochs=3, log=lines.append).fit(resume=True)
    assert any("falling back to the previous checkpoint" in line for line in lines)
    assert len(result.history) == 3  # epoch 3 redone from the checkpoint after epoch 2


def _sigkilled_writer(directory, name, size):
    """A child process that starts an atomic write of ``size`` bytes into ``directory`` and is SIGKILLed."""
    code = (f"import os, signal; from minitl.fileio import atomic_write\n"
            f"def write(h):\n    h.write(b'x' * {size}); h.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
            f"atomic_write({str(directory / name)!r}, write)\n")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.returncode == -9


def test_temporaries_of_killed_writers_are_removed_on_start(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for _ in range(2):
        _sigkilled_writer(run, "checkpoint.npz", 1 << 20)
    live = run / f".tmp-checkpoint.npz-{os.getpid()}-abcdefgh"  # this process's own: never touched
    live.write_bytes(b"x")
    assert len([n for n in os.listdir(run) if n.startswith(".tmp-")]) == 3
    lines = []
    _trainer(make_model(), make_splits(), tmp_path, epochs=1, log=lines.append).fit()
    assert sorted(n for n in os.listdir(run) if n.startswith(".tmp-")) == [live.name]
    assert any("removed 2 temporary file(s) (2.0 MiB)" in line for line in lines)


def test_feature_cache_temporaries_of_killed_extractions_are_removed(tmp_path):
    cache = FeatureCache(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    _sigkilled_writer(tmp_path, "k1.x.npy", 4096)
    _sigkilled_writer(tmp_path, "other.x.npy", 4096)  # another entry's: left for its own run
    with cache.entry("k1", {}) as entry:
        entry.allocate((2, 3), np.float32)[:] = 1
        entry.commit([0, 1])
    names = os.listdir(tmp_path)
    assert not any(n.startswith(".tmp-k1.") for n in names) and any(n.startswith(".tmp-other.") for n in names)
    assert remove_stale_temporaries(tmp_path) == (1, 4096)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_weights_that_blow_up_in_the_last_step_are_never_checkpointed(tmp_path):
    model = make_model()
    trainer = _trainer(model, make_splits(), tmp_path, epochs=3)
    original = trainer._train_epoch

    def last_step_blows_up(phase, epoch, *args):
        out = original(phase, epoch, *args)
        if epoch == 1:
            model.head.fc2.weight.data[0, 0] = np.inf  # as a huge learning rate does in the last update
        return out

    trainer._train_epoch = last_step_blows_up
    with pytest.raises(TrainingDiverged, match=r"weights hold NaN or Inf after head epoch 2 \(head.fc2.weight\).*after epoch 1"):
        trainer.fit()
    saved = ck.load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert saved["epoch"] == 1 and all(np.isfinite(v).all() for v in saved["model"].values())


def _splits_with_nan(where):
    splits = make_splits()
    part = getattr(splits, where)
    images = part.images.astype(np.float32)
    images[3, 0, 0, 0] = np.nan
    poisoned = ArrayDataset(images, part.labels, splits.classes)
    train, test = (poisoned, splits.test) if where == "train" else (splits.train, poisoned)
    return DataSplits(train, test, splits.classes, "synthetic")


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_nan_in_the_held_out_split_is_an_error_naming_it(tmp_path):
    with pytest.raises(NonFiniteData, match="held-out split gives NaN or Inf outputs although the weights are finite"):
        _trainer(make_model(), _splits_with_nan("test"), tmp_path, mode="scratch", epochs=1).fit()


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_nan_in_the_training_data_does_not_blame_the_learning_rate(tmp_path):
    with pytest.raises(NonFiniteData, match=r"training split.s batch \d+ .* contains NaN or Inf inputs") as caught:
        _trainer(make_model(), _splits_with_nan("train"), tmp_path, mode="scratch", epochs=1).fit()
    assert "learning rate" not in str(caught.value)


def test_skipped_images_are_listed_in_run_json(tmp_path):
    import json

    splits = make_splits()
    splits.skipped = [{"path": "data/dog/broken.png", "error": "UnidentifiedImageError: cannot identify"}]
    model = make_model()
    Trainer(model, splits, spec_of(model), TrainConfig(mode="features", epochs=1, batch_size=8, prefetch=0),
            out_dir=tmp_path / "run", cache_dir=tmp_path / "cache", show_progress=False).fit()
    logged = json.loads((tmp_path / "run" / "run.json").read_text())
    assert logged["skipped_images"] == {"count": 1, "files": splits.skipped}
