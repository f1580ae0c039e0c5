"""Trainer: modes, cache, resume = uninterrupted, NaN stop, guardrails, time budget."""
import dataclasses
import os
import warnings

import numpy as np
import pytest

import minitl
from minitl import nn
from minitl.data import ImagePipeline
from minitl.train import checkpoint as ck
from minitl.train import FrozenParameterChanged, TrainConfig, Trainer, TrainingDiverged
from train_helpers import make_model, make_splits, spec_of


def _trainer(model, splits, tmp_path, name="run", **config):
    defaults = dict(mode="features", epochs=2, finetune_epochs=2, batch_size=8, lr=0.05, finetune_lr=0.01,
                    prefetch=0)
    defaults.update(config)
    return Trainer(model, splits, spec_of(model), TrainConfig(**defaults), out_dir=tmp_path / name,
                   cache_dir=tmp_path / "cache", show_progress=False)


class Killed(KeyboardInterrupt):
    """What a kill between two epochs looks like to the run: it stops where it is."""


def _killed_after(trainer, epochs):
    """Make ``trainer`` stop like a killed process once ``epochs`` epochs (and their checkpoints) are done."""
    original, done = trainer._train_epoch, []

    def epoch_or_kill(*args):
        if len(done) == epochs:
            raise Killed
        done.append(1)
        return original(*args)

    trainer._train_epoch = epoch_or_kill
    return trainer


def _weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("mode", ["features", "finetune", "scratch"])
def test_every_mode_learns_the_synthetic_task(tmp_path, mode):
    splits = make_splits()
    model = make_model(width=32, hidden=32)
    result = _trainer(model, splits, tmp_path, mode=mode, epochs=12, finetune_epochs=4, lr=0.1).fit()
    assert result.accuracy >= 0.9, [(h["train_loss"], h["val_acc"]) for h in result.history]
    assert np.asarray(result.confusion).sum() == len(splits.test)
    assert os.path.isfile(tmp_path / "run" / "run.json") and os.path.isfile(tmp_path / "run" / "checkpoint.npz")


def test_features_mode_leaves_the_backbone_bitwise_unchanged(tmp_path):
    model = make_model()
    before = {k: v.copy() for k, v in model.backbone.state_dict().items()}
    head_before = model.head.fc1.weight.numpy().copy()
    result = _trainer(model, make_splits(), tmp_path).fit()
    for name, value in model.backbone.state_dict().items():
        assert np.array_equal(value, before[name]), name
    assert not np.array_equal(model.head.fc1.weight.numpy(), head_before)
    assert "bitwise unchanged" in result.frozen_check


def test_finetune_trains_only_the_last_stage_with_its_own_learning_rate(tmp_path):
    model = make_model()
    before = _weights(model)
    trainer = _trainer(model, make_splits(), tmp_path, mode="finetune", unfreeze=1)
    phases = trainer.plan()
    assert [p.name for p in phases] == ["head", "finetune"]
    assert [lr for _, _, lr in phases[1].groups] == [0.01, 0.05]  # stages at finetune_lr, head at lr
    trainer.fit()
    after = model.state_dict()
    for name in before:
        moved = not np.array_equal(before[name], after[name])
        assert moved == (name.startswith("backbone.layer2") or name.startswith("head")), name


def test_second_run_skips_the_backbone(tmp_path):
    splits = make_splits()
    first = _trainer(make_model(), splits, tmp_path, name="a")
    first.fit()
    assert not any(entry["hit"] for entry in first.cache_report.values())
    model = make_model()

    def no_backbone(x):
        raise AssertionError("the backbone ran although the features were cached")

    model.segments[0] = ("stem", no_backbone)
    second = _trainer(model, splits, tmp_path, name="b")
    result = second.fit()
    assert all(entry["hit"] for entry in second.cache_report.values())
    assert result.extract_seconds == 0 and result.extract_seconds_uncached > 0


def test_cache_holds_each_training_image_and_its_mirror(tmp_path):
    splits = make_splits(n_train=6)
    model = make_model()
    trainer = _trainer(model, splits, tmp_path)
    cached = trainer.features("train", len(model.segments))
    assert len(cached) == 12 and cached.labels.tolist() == splits.train.labels.tolist() * 2
    mirrored = ImagePipeline(spec_of(model))(splits.train.images[2][:, ::-1])  # computed apart, image by image
    with minitl.no_grad():
        expected = model.features(minitl.Tensor(mirrored[None])).numpy()[0]
    np.testing.assert_allclose(cached.features[6 + 2], expected, rtol=1e-5, atol=1e-6)
    unflipped = _trainer(make_model(), splits, tmp_path, name="noflip", flip=False).features("train", 3)
    assert len(unflipped) == 6


def test_cache_key_follows_weights_data_and_preprocessing(tmp_path):
    splits = make_splits()
    base = _trainer(make_model(), splits, tmp_path)
    key = base.store.cache_parts("train", splits.train, 3, True)
    other_weights = _trainer(make_model(seed=2), splits, tmp_path).store.cache_parts("train", splits.train, 3, True)
    other_data = base.store.cache_parts("train", make_splits(seed=5).train, 3, True)
    assert key["weights"] != other_weights["weights"] and key["data"] != other_data["data"]
    model = make_model()
    spec = spec_of(model)
    spec = dataclasses.replace(spec, mean=(0.4, 0.4, 0.4))
    other_pre = Trainer(model, splits, spec, TrainConfig(), cache_dir=tmp_path / "cache", show_progress=False)
    assert other_pre.store.cache_parts("train", splits.train, 3, True)["preprocessing"] != key["preprocessing"]


@pytest.mark.parametrize("mode, stop_after, config", [
    ("finetune", 1, {}),            # killed inside the head phase
    ("finetune", 3, {}),            # killed inside the fine-tuning phase
    ("scratch", 2, {"augment": True, "epochs": 3, "crop_padding": 1}),  # images + random augmentation
])
def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, mode, stop_after, config):
    splits = make_splits()
    straight = make_model()
    _trainer(straight, splits, tmp_path, name="straight", mode=mode, **config).fit()

    killed = make_model()
    with pytest.raises(Killed):
        _killed_after(_trainer(killed, splits, tmp_path, name="resumed", mode=mode, **config), stop_after).fit()
    saved = ck.load_checkpoint(tmp_path / "resumed" / "checkpoint.npz")
    assert len(saved["history"]) == stop_after

    resumed = make_model(seed=99)  # a fresh process: other initial weights, overwritten by the checkpoint
    result = _trainer(resumed, splits, tmp_path, name="resumed", mode=mode, **config).fit(resume=True)
    for name, value in straight.state_dict().items():
        assert np.array_equal(value, resumed.state_dict()[name]), name
    assert len(result.history) == (4 if mode == "finetune" else 3)


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    splits = make_splits()
    with pytest.raises(Killed):
        _killed_after(_trainer(make_model(), splits, tmp_path, name="r"), 1).fit()
    with pytest.raises(ck.CheckpointError, match="belongs to another run"):
        _trainer(make_model(), splits, tmp_path, name="r", lr=0.5).fit(resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        _trainer(make_model(), splits, tmp_path, name="none").fit(resume=True)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    model = make_model()
    trainer = _trainer(model, make_splits(), tmp_path, epochs=4)
    original = trainer._train_epoch

    def poisoned(phase, epoch, *args):
        if epoch == 2:
            model.head.fc2.bias.data[:] = np.inf  # something blows up during the third epoch
        return original(phase, epoch, *args)

    trainer._train_epoch = poisoned
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf) at head epoch 3, batch 1.*checkpoint\.npz "
                                               r"\(after epoch 2\).*lower learning rate"):
        trainer.fit()
    saved = ck.load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert saved["epoch"] == 2 and np.isfinite(saved["model"]["head.fc2.bias"]).all()


def test_frozen_parameter_that_moves_is_caught(tmp_path):
    model = make_model()
    trainer = _trainer(model, make_splits(), tmp_path)
    original = trainer._train_epoch

    def sneaky(*args):
        out = original(*args)
        model.backbone.layer1[0].weight.data[0, 0] += 1e-7  # a frozen weight moves
        return out

    trainer._train_epoch = sneaky
    with pytest.raises(FrozenParameterChanged, match="backbone.layer1.0.weight"):
        trainer.fit()


class BatchNormStandIn(nn.Module):
    """A BatchNorm over features (N, C): batch statistics and running averages in training mode."""

    def __init__(self, c):
        super().__init__()
        self.register_buffer("running_mean", np.zeros(c, np.float32))

    def forward(self, x):
        if self.training:
            self.running_mean.data = 0.9 * self.running_mean.data + 0.1 * x.data.mean(axis=0)
            return x - minitl.Tensor(x.data.mean(axis=0))
        return x - self.running_mean


def test_warning_when_frozen_batchnorm_is_in_training_mode(tmp_path):
    model = make_model()
    model.backbone.layer1.append(BatchNormStandIn(12))
    with pytest.warns(RuntimeWarning, match="BatchNorm layer\\(s\\) in training mode"):
        _trainer(model, make_splits(), tmp_path, freeze_bn=False, augment=True, epochs=1).fit()
    model = make_model()
    model.backbone.layer1.append(BatchNormStandIn(12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default (BatchNorm in inference mode) warns about nothing
        _trainer(model, make_splits(), tmp_path, name="quiet", augment=True, epochs=1).fit()
    assert np.array_equal(model.backbone.layer1[2].running_mean.numpy(), np.zeros(12))


def test_real_batchnorm_stays_in_inference_mode_during_finetune(tmp_path):
    if not hasattr(nn, "BatchNorm1d"):
        pytest.skip("nn.BatchNorm1d not available")
    model = make_model()
    model.backbone.layer2.append(nn.BatchNorm1d(12))
    model.backbone.layer2[2].running_mean.data[:] = 0.5
    trainer = _trainer(model, make_splits(), tmp_path, mode="finetune")
    trainer.fit()
    assert np.allclose(model.backbone.layer2[2].running_mean.numpy(), 0.5)  # running statistics untouched
    assert "finetune" in trainer.plan()[1].name


def test_time_budget_stops_training(tmp_path):
    result = _trainer(make_model(), make_splits(), tmp_path, mode="scratch", epochs=1000, time_budget=0.0).fit()
    assert result.stopped_by_budget and result.epochs_run == 1


def test_bad_config():
    with pytest.raises(ValueError, match="mode must be one of"):
        TrainConfig(mode="magic").check()
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        TrainConfig(batch_size=0).check()


def test_finetune_a_small_real_resnet_keeps_batchnorm_statistics(tmp_path):
    models = pytest.importorskip("minitl.models")
    from minitl.data import ArrayDataset, DataSplits, Preprocessing
    from minitl.train import TransferModel

    minitl.manual_seed(0)
    backbone = models.ResNet(block="basic", layers=(1, 1), widths=(4, 8), stem_width=4, num_classes=None)
    for name, buf in backbone.named_buffers():
        if name.endswith("running_var"):
            buf.data[:] = 2.0  # "pretrained" statistics that must survive
    model = TransferModel(backbone, 3, hidden=8)
    rng = np.random.default_rng(0)
    labels = np.arange(24) % 3
    images = rng.integers(0, 255, (24, 16, 16, 3)).astype(np.uint8)
    data = ArrayDataset(images, labels, ["a", "b", "c"])
    splits = DataSplits(data, data, ["a", "b", "c"], "noise")
    buffers = {n: b.numpy().copy() for n, b in backbone.named_buffers()}
    trainer = Trainer(model, splits, Preprocessing(16), TrainConfig(mode="finetune", epochs=1, finetune_epochs=1,
                      unfreeze=1, batch_size=8, prefetch=0), out_dir=tmp_path / "r", cache_dir=tmp_path / "c",
                      show_progress=False)
    assert model.segment_names == ["stem", "layer1", "layer2"]
    result = trainer.fit()
    for name, value in backbone.named_buffers():
        assert np.array_equal(value.numpy(), buffers[name]), name  # BatchNorm stayed in inference mode
    assert "finetune" in result.frozen_check and result.epochs_run == 2


def test_a_killed_extraction_leaves_no_cache_file_and_a_committed_one_reads_back(tmp_path):
    from minitl.train import FeatureCache

    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        with cache.entry("k", {"what": "test"}) as entry:
            entry.allocate((4, 2), np.float32)[:2] = 1.0
            raise KeyboardInterrupt  # killed halfway through the extraction
    assert list((tmp_path / "cache").iterdir()) == [] and cache.load("k") is None
    with cache.entry("k", {"what": "test"}) as entry:
        entry.allocate((3, 2), np.float32)[:] = np.arange(6).reshape(3, 2)
        rows = entry.commit([0, 1, 2], {"seconds": 1.5})
    features, labels = cache.load("k")
    assert np.array_equal(rows, np.arange(6).reshape(3, 2)) and np.array_equal(features, rows)
    assert labels.tolist() == [0, 1, 2] and cache.description("k") == {"what": "test", "seconds": 1.5}
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["k.json", "k.x.npy", "k.y.npy"]


def test_held_out_check_says_so_when_it_cannot_stratify(tmp_path):
    splits = make_splits(n_test=30)
    splits.test.labels[:] = np.r_[np.zeros(15, int), np.ones(14, int), [2]]  # class c2: one test image
    trainer = _trainer(make_model(), splits, tmp_path, mode="scratch", epochs=1, epoch_eval_size=12)
    with pytest.warns(RuntimeWarning, match=r"cannot take 4 images of every class .*whole held-out split "
                                            r"\(30 images\)"):
        result = trainer.fit()
    assert result.epochs_run == 1
