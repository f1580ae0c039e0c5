"""The BiLSTM classifier in the text workflow, on a toy sentiment CSV and a tiny GloVe-format file:
what each mode trains (frozen vectors bitwise unchanged, fine-tuned ones moved, scratch starts
random), resume = uninterrupted, the out-of-vocabulary count, the saved classifier through
evaluate/predict, and the command line (finetune, compare, defaults, errors)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from minitl.data.sources import DataSplits
from minitl.data.text import TextDataset
from minitl.train import checkpoint as ck
from minitl.train import text_rnn as tr
from minitl.train import text_workflow as tw
from minitl.train.text import TextConfig
from minitl.train.workflow import Job

POSITIVE, NEGATIVE = ["good", "great", "fine"], ["bad", "awful", "dull"]
NEUTRAL = ["film", "movie", "plot", "the", "a", "was", "and"]


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    """PNG plots are tested elsewhere (tests/test_cli_plots.py); drawing them would be most of this file's time."""
    from minitl.train import metrics, report

    for module, name in ((report, "plot_learning_curves"), (report, "plot_confusion"), (metrics, "plot_comparison")):
        monkeypatch.setattr(module, name, lambda *args, **kwargs: None)


def make_texts(n, seed):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        y = i % 2
        words = list(rng.choice(NEUTRAL, size=rng.integers(2, 10)))
        for _ in range(2):
            words.insert(rng.integers(0, len(words) + 1), rng.choice(POSITIVE if y else NEGATIVE))
        if i % 5 == 0:
            words.append("zyzzyva")  # a word the embedding does not know
        texts.append(" ".join(words))
        labels.append(y)
    return TextDataset(texts, labels, ["neg", "pos"], name=f"toy{seed}")


def make_splits():
    splits = DataSplits(make_texts(48, 0), make_texts(24, 1), ["neg", "pos"], "toy", "given")
    splits.unit = "texts"
    return splits


@pytest.fixture
def glove_txt(tmp_path):
    """GloVe's text format: sentiment words along one axis, the rest random."""
    rng = np.random.default_rng(7)
    lines = []
    for word in POSITIVE + NEGATIVE + NEUTRAL + ["unused"]:
        v = rng.normal(0, 0.3, size=8)
        v[0] = 1.0 if word in POSITIVE else -1.0 if word in NEGATIVE else 0.0
        lines.append(word + " " + " ".join(f"{x:.5f}" for x in v))
    path = tmp_path / "tiny_glove.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def config(mode, **kw):
    settings = dict(mode=mode, epochs=3, batch_size=8, lr=1e-2, clip=0.0, weight_decay=0.0, max_length=12,
                    cache=False)
    settings.update(kw)
    return TextConfig(**settings)


def run(tmp_path, glove_txt, mode, name, **kw):
    job = Job(weights=str(glove_txt), arch="bilstm", hidden=6)
    c = config(mode, **kw)
    prepared = tr.prepare(job, c, log=lambda m: None, splits=make_splits())
    lines = []
    result, path = tr.rnn_finetune(job, c, tmp_path / name, show_progress=False, log=lines.append, prepared=prepared)
    return result, path, prepared, lines


def test_modes_train_what_they_should_and_count_unknown_words(tmp_path, glove_txt):
    result, path, (_, tokenizer, table, _), lines = run(tmp_path, glove_txt, "features", "f")
    assert result.frozen_check == "frozen-embeddings: 1 frozen arrays bitwise unchanged"  # the table
    model, _, _, meta = tw.load_text_classifier(path)
    np.testing.assert_array_equal(model.backbone.embedding.weight.numpy(), table)  # frozen: exactly the file's
    assert sorted(tokenizer.words[2:]) == sorted(POSITIVE + NEGATIVE + NEUTRAL)  # "unused" never occurs: not kept
    unknown = sum(1 for i in range(48) if i % 5 == 0)
    assert any(f"training texts {unknown} of " in line for line in lines)  # the OOV count in the run header
    assert meta["out_of_vocabulary"]["train"].startswith(f"{unknown} of ")

    _, path, _, _ = run(tmp_path, glove_txt, "finetune", "t")
    tuned = tw.load_text_classifier(path)[0].backbone.embedding.weight.numpy()
    assert not np.array_equal(tuned[2:], table[2:])
    np.testing.assert_array_equal(tuned[0], 0)  # <pad> gets no gradient
    assert np.abs(tuned[1]).max() > 0  # <unk> starts at 0 and, seen in training ("zyzzyva"), is trained

    result, path, _, _ = run(tmp_path, glove_txt, "scratch", "s", epochs=1)
    model = tw.load_text_classifier(path)[0]
    assert abs(float(np.corrcoef(model.backbone.embedding.weight.numpy()[2:, 0], table[2:, 0])[0, 1])) < 0.9


def test_frozen_glove_learns_the_toy_task(tmp_path, glove_txt):
    result, *_ = run(tmp_path, glove_txt, "features", "f", epochs=6)
    assert result.accuracy >= 0.9


class Killed(KeyboardInterrupt):
    pass


def test_resumed_run_ends_with_the_same_weights(tmp_path, glove_txt, monkeypatch):
    _, straight, _, _ = run(tmp_path, glove_txt, "finetune", "a", epochs=2)
    original, done = tr.RNNTextTrainer._train_epoch, []

    def epoch_or_kill(self, *args):
        if len(done) == 1:
            raise Killed
        done.append(1)
        return original(self, *args)

    monkeypatch.setattr(tr.RNNTextTrainer, "_train_epoch", epoch_or_kill)
    with pytest.raises(Killed):
        run(tmp_path, glove_txt, "finetune", "b", epochs=2)
    monkeypatch.setattr(tr.RNNTextTrainer, "_train_epoch", original)
    assert len(ck.load_checkpoint(tmp_path / "b" / "checkpoint.npz")["history"]) == 1
    job, c = Job(weights=str(glove_txt), arch="bilstm", hidden=6), config("finetune", epochs=2, seed=3)
    prepared = tr.prepare(job, c, log=lambda m: None, splits=make_splits())
    c.seed = 0  # the initial weights differ (seed 3); the checkpoint's must win
    _, resumed = tr.rnn_finetune(job, c, tmp_path / "b", resume=True, show_progress=False, log=lambda m: None,
                                 prepared=prepared)
    a, b = tw.load_text_classifier(straight)[0].state_dict(), tw.load_text_classifier(resumed)[0].state_dict()
    for name, value in a.items():
        assert np.array_equal(value, b[name]), name


# --- the command line --------------------------------------------------------------------------------------------

@pytest.fixture
def toy_csv(tmp_path):
    path = tmp_path / "toy.csv"
    data = make_texts(60, 3)
    path.write_text("text,label\n" + "".join(f'"{t}",{data.classes[y]}\n' for t, y in zip(data.texts, data.labels)))
    return path


def test_cli_bilstm_finetune_evaluate_predict(toy_csv, glove_txt, tmp_path, capsys):
    from minitl.cli import main

    out = tmp_path / "cli"
    code = main(["finetune", "--data", str(toy_csv), "--arch", "bilstm", "--weights", str(glove_txt), "--mode",
                 "features", "--out", str(out), "--epochs", "2", "--hidden", "6", "--test-per-class", "10",
                 "--train-per-class", "20"])
    assert code == 0
    text = capsys.readouterr().out
    assert "bilstm (hidden 6/direction" in text and "Adam lr 0.002, batch 32" in text  # the recurrent defaults
    assert "out of vocabulary (<unk>): training texts" in text and "test accuracy" in text
    saved = json.loads((out / "run.json").read_text())
    assert saved["config"]["lr"] == 2e-3 and saved["config"]["max_length"] == 256 and saved["config"]["clip"] == 0.0
    assert main(["predict", str(out / "model.npz"), "good great film", "awful dull plot", "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert predicted[0]["tokens"] == 3 and len(predicted[1]["top"]) == 2
    assert main(["evaluate", str(out / "model.npz"), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["texts"] == 20 and 0.0 <= report["accuracy"] <= 1.0
    # --resume continues from the saved settings (here: nothing left to do but the final evaluation)
    assert main(["finetune", "--out", str(out), "--resume", "--quiet"]) == 0


def test_cli_bilstm_compare_runs_every_mode_and_tfidf(toy_csv, glove_txt, tmp_path, capsys):
    from minitl.cli import main

    code = main(["compare", "--data", str(toy_csv), "--weights", str(glove_txt), "--arch", "bigru",
                 "--out", str(tmp_path / "cmp"), "--epochs", "1", "--hidden", "4", "--test-per-class", "10", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    for mode in ("scratch", "features", "finetune", "tfidf"):
        assert f"\n{mode} " in out
    assert "random word vectors (scratch)" in out and "TF-IDF baseline" in out


def test_cli_recurrent_defaults_and_errors(tmp_path, capsys):
    from minitl.cli import build_parser, main
    from minitl.cli import text as cli_text

    argv = ["finetune", "--weights", "glove", "--data", "rotten-tomatoes", "--epochs", "3"]
    args = build_parser().parse_args(argv)
    args.argv = argv
    assert cli_text.is_text_job(args) and cli_text.is_rnn_job(args)
    cli_text.apply_text_defaults(args)
    config = cli_text.text_config(args, "features")
    assert (args.arch, args.hidden, config.epochs, config.lr, config.batch_size, config.max_length) == \
        ("bilstm", 64, 3, 2e-3, 32, 256)
    bad = tmp_path / "bad.txt"
    bad.write_text("good 1.0 2.0\nbad 1.0\n")
    code = main(["finetune", "--data", "rotten-tomatoes", "--arch", "bilstm", "--weights", str(bad),
                 "--out", str(tmp_path / "x"), "--quiet"])
    assert code != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
