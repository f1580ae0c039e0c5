"""The multi-task trainer: per-step conflict log in run.json, plots, and resume ending with the
weights of an uninterrupted run."""
from __future__ import annotations

import json

import numpy as np
import pytest

import minitl
from minitl import nn
from minitl.train.checkpoint import CheckpointError
from minitl.train.multitask import MultiTaskConfig, MultiTaskTrainer, TaskData, task_metrics


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 6)).astype(np.float32)
    main, aux = (x[:, 0] > 0).astype(int), (x[:, 0] + x[:, 1] > 0).astype(int)
    aux[::3] = -1
    return TaskData(x[:90], {"main": main[:90], "aux": aux[:90]}), TaskData(x[90:], {"main": main[90:], "aux": aux[90:]})


def _model(weighting="fixed"):
    minitl.random.manual_seed(0)
    return nn.MultiTask(nn.Sequential(nn.Linear(6, 8), nn.ReLU()), {"main": nn.Linear(8, 2), "aux": nn.Linear(8, 2)},
                        weighting=weighting)


def test_run_logs_conflict_per_step_and_writes_run_json(tmp_path):
    train, test = _data()
    config = MultiTaskConfig(epochs=3, batch_size=16, conflict=("representation", "parameters"))
    result = MultiTaskTrainer(_model(), train, test, config, out_dir=tmp_path).fit()
    steps_per_epoch = -(-len(train) // 16)
    assert len(result["steps"]) == 3 * steps_per_epoch
    payload = json.loads((tmp_path / "run.json").read_text())
    assert payload["accuracy"] == result["accuracy"] == payload["held_out"]["main"]["accuracy"]
    for record in payload["steps"]:
        for level in ("representation", "parameters"):
            assert -1.0 <= record[level]["cos"]["main|aux"] <= 1.0
            assert set(record[level]["norm"]) == {"main", "aux"}
    assert payload["conflict_summary"]["representation"]["main|aux"]["steps"] == len(result["steps"])
    pytest.importorskip("matplotlib")
    assert (tmp_path / "conflict.png").stat().st_size > 0 and (tmp_path / "conflict_parameters.png").exists()


@pytest.mark.parametrize("weighting", ["fixed", "uncertainty"])
def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, weighting):
    train, test = _data()
    config = MultiTaskConfig(epochs=4, batch_size=16)
    whole_model = _model(weighting)
    whole = MultiTaskTrainer(whole_model, train, test, config, out_dir=tmp_path / "a").fit()
    MultiTaskTrainer(_model(weighting), train, test, config, out_dir=tmp_path / "b").fit(stop_after_epochs=2)
    resumed_model = _model(weighting)
    resumed = MultiTaskTrainer(resumed_model, train, test, config, out_dir=tmp_path / "b").fit(resume=True)
    for name, value in whole_model.state_dict().items():
        np.testing.assert_array_equal(resumed_model.state_dict()[name], value, err_msg=name)
    timeless = lambda history: [{k: v for k, v in h.items() if k != "seconds"} for h in history]  # noqa: E731
    assert timeless(resumed["history"]) == timeless(whole["history"])
    assert resumed["steps"] == whole["steps"]
    other = MultiTaskConfig(epochs=4, batch_size=8)
    with pytest.raises(CheckpointError, match="another run"):
        MultiTaskTrainer(_model(weighting), train, test, other, out_dir=tmp_path / "b").fit(resume=True)


def test_task_metrics_count_only_labelled_examples():
    logits = {"t": np.array([[2.0, 0.0], [0.0, 2.0], [5.0, 0.0]])}
    out = task_metrics(logits, {"t": np.array([0, 0, -1])})
    assert out["t"]["labelled"] == 2 and out["t"]["accuracy"] == 0.5
    z = logits["t"][:2]
    expected = -np.mean([z[0, 0] - np.log(np.exp(z[0]).sum()), z[1, 0] - np.log(np.exp(z[1]).sum())])
    assert out["t"]["loss"] == pytest.approx(expected)
    assert task_metrics(logits, {"t": np.full(3, -1)})["t"]["accuracy"] is None


def test_bad_settings_are_clear_errors():
    train, test = _data()
    with pytest.raises(ValueError, match="main task"):
        MultiTaskTrainer(_model(), train, test, MultiTaskConfig(main="nope"))
    with pytest.raises(ValueError, match="labels"):
        TaskData(np.zeros((3, 2)), {"a": np.zeros(2)})
    with pytest.raises(ValueError, match="conflict levels"):
        MultiTaskTrainer(_model(), train, test, MultiTaskConfig(conflict=("weights",)))
