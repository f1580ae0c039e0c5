"""The text workflow on a tiny randomly-initialised BERT and a toy sentiment set: the three modes,
AdamW groups and schedule, resume = uninterrupted, the saved classifier, evaluate/predict, the TF-IDF
baseline and the command line (the real MiniLM's transplant is tested in tests/models/test_bert.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import minitl
from minitl.data.sources import DataSplits
from minitl.data.text import TextDataset, WordPieceTokenizer
from minitl.models.bert import BertConfig, BertModel
from minitl.train import checkpoint as ck
from minitl.train import text_workflow as tw
from minitl.train.text import TextConfig, TextEncoder, TextTrainer, TextTransferModel, decay_groups, encode_splits
from minitl.train.workflow import Job

WORDS = "good great fine bad awful dull film movie plot the a was and".split()
VOCAB = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS)}


def make_texts(n, seed):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        y = i % 2
        words = list(rng.choice(WORDS[6:], size=rng.integers(2, 12)))
        for _ in range(2):
            words.insert(rng.integers(0, len(words) + 1), rng.choice(WORDS[:3] if y else WORDS[3:6]))
        texts.append(" ".join(words))
        labels.append(y)
    return TextDataset(texts, labels, ["neg", "pos"], name=f"toy{seed}")


def make_splits():
    splits = DataSplits(make_texts(64, 0), make_texts(32, 1), ["neg", "pos"], "toy", "given")
    splits.unit = "texts"
    return splits


def tiny_bert(seed=0):
    minitl.manual_seed(seed)
    return BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=24, hidden_dropout_prob=0.1))


def config(mode, **kw):
    settings = dict(mode=mode, epochs=4, finetune_epochs=2, batch_size=8, lr=1e-2, finetune_lr=3e-3, scratch_lr=3e-3,
                    max_length=16, cache=False)
    settings.update(kw)
    return TextConfig(**settings)


def tok():
    return WordPieceTokenizer(VOCAB, max_length=None)


def trainer(model, out, mode, **kw):
    c = config(mode, **kw)
    return TextTrainer(model, encode_splits(make_splits(), tok(), c.max_length), tw.text_spec(tok(), c), c,
                       out_dir=out, show_progress=False)


def model_with(bert, seed=0):
    minitl.manual_seed(seed)
    return TextTransferModel(TextEncoder(bert), 2, dropout=0.1)


def test_modes_train_what_they_should(tmp_path):
    bert = tiny_bert()
    before = {k: v.copy() for k, v in bert.state_dict().items()}
    features = trainer(model_with(bert), tmp_path / "f", "features").fit()
    assert "bitwise unchanged" in features.frozen_check
    assert all(np.array_equal(v, bert.state_dict()[k]) for k, v in before.items())
    assert features.history[-1]["train_loss"] < features.history[0]["train_loss"]
    model = model_with(bert)
    finetune = trainer(model, tmp_path / "t", "finetune").fit()
    moved = [k for k, v in before.items() if not np.array_equal(v, model.backbone.bert.state_dict()[k])]
    assert "embeddings.word_embeddings.weight" in moved and any(k.startswith("layers.1.") for k in moved)
    # linear warm-up then decay to 0: the rate after the last step is 0
    assert finetune.history[-1]["lr"][0] == pytest.approx(0.0)
    assert (tmp_path / "t" / "run.json").is_file() and (tmp_path / "t" / "checkpoint.npz").is_file()
    assert json.loads((tmp_path / "t" / "run.json").read_text())["preprocessing"]["max_length"] == 16


def test_adamw_groups_exclude_biases_and_layernorm():
    model = model_with(tiny_bert())
    decay, no_decay = decay_groups([model], 1e-3, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert all(n.endswith("bias") or ".norm" in n for n in no_decay_names)
    assert "backbone.bert.embeddings.norm.weight" in no_decay_names
    assert "head.fc.weight" in {names[id(p)] for p in decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


class Killed(KeyboardInterrupt):
    pass


@pytest.mark.parametrize("mode", ["finetune", "features"])
def test_resumed_run_ends_with_the_same_weights(tmp_path, mode):
    straight = model_with(tiny_bert())
    trainer(straight, tmp_path / "a", mode).fit()
    killed = trainer(model_with(tiny_bert()), tmp_path / "b", mode)
    original, done = killed._train_epoch, []

    def epoch_or_kill(*args):
        if len(done) == 1:
            raise Killed
        done.append(1)
        return original(*args)

    killed._train_epoch = epoch_or_kill
    with pytest.raises(Killed):
        killed.fit()
    saved = ck.load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert len(saved["history"]) == 1
    if mode == "features":  # the frozen encoder is referenced (sha256), not rewritten: only the head is stored
        assert sorted(saved["model"]) == ["head.fc.bias", "head.fc.weight"]
    else:  # everything trains but the pooler, which mean pooling leaves unused
        assert sorted(saved["unchanged"]) == ["backbone.bert.pooler.bias", "backbone.bert.pooler.weight"]
    assert len(saved["model"]) + len(saved["unchanged"]) == len(straight.state_dict())
    # resume rebuilds the model as the CLI does: the same pretrained encoder, the head's initial
    # weights from another seed (the checkpoint must bring back every array that moved)
    resumed = model_with(tiny_bert(seed=0), seed=5)
    trainer(resumed, tmp_path / "b", mode).fit(resume=True)
    for name, value in straight.state_dict().items():
        assert np.array_equal(value, resumed.state_dict()[name]), name


def test_features_checkpoint_refuses_to_resume_on_other_pretrained_weights(tmp_path):
    trainer(model_with(tiny_bert()), tmp_path / "r", "features", epochs=1).fit()
    other = trainer(model_with(tiny_bert(seed=7)), tmp_path / "r", "features", epochs=1)
    with pytest.raises(ck.CheckpointError, match="other weights"):
        other.fit(resume=True)


def test_saved_classifier_evaluate_and_predict(tmp_path):
    splits = make_splits()
    result, path = tw.text_finetune(Job(), config("finetune", finetune_epochs=3), tmp_path / "run",
                                    splits=splits, pretrained=(tiny_bert(), tok(), "tiny"), show_progress=False,
                                    log=lambda m: None)
    assert tw.is_text_classifier(path) and not tw.is_text_classifier(tmp_path / "run" / "checkpoint.npz")
    model, classes, tokenizer, meta = tw.load_text_classifier(path)
    assert classes == ["neg", "pos"] and meta["max_length"] == 16
    ids, mask = tokenizer.encode_batch(["good film", "awful dull plot"], 16)
    with minitl.no_grad():
        logits = model((minitl.Tensor(ids), minitl.Tensor(mask))).numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    predicted = tw.text_predict(path, ["good film", "awful dull plot"], top_k=2)
    for row, probs in zip(predicted, p):
        assert {t["class"]: t["probability"] for t in row["top"]} == pytest.approx(dict(zip(classes, probs)))
    from minitl.transfer import npz

    other = npz.write(str(tmp_path / "other.npz"), {"w": np.zeros(2, np.float32)}, {"format": "weights"})
    with pytest.raises(ValueError, match="not a text classifier"):
        tw.load_text_classifier(other)


def test_tfidf_baseline_and_verdict():
    splits = make_splits()
    row = tw.tfidf_baseline(splits, log=lambda m: None)
    assert row["mode"] == "tfidf" and row["accuracy"] > 0.9  # the sentiment words separate the toy set
    lines = tw.compare_verdict({"features": {"accuracy": 0.8}, "finetune": {"accuracy": 0.86},
                                "tfidf": {"accuracy": 0.9}}, splits)
    assert lines[0].startswith("finetune gains 6.0 points") and "bag-of-words wins by 4.0" in lines[1]


def test_text_config_checks():
    with pytest.raises(ValueError, match="pooling"):
        TextConfig(pooling="max").check()
    with pytest.raises(ValueError, match="max_length"):
        TextConfig(max_length=1).check()


# --- the command line --------------------------------------------------------------------------------------------

@pytest.fixture
def toy_csv(tmp_path, monkeypatch):
    path = tmp_path / "toy.csv"
    data = make_texts(60, 3)
    rows = "".join(f'"{t}",{data.classes[y]}\n' for t, y in zip(data.texts, data.labels))
    path.write_text("text,label\n" + rows)
    monkeypatch.setattr(tw, "load_text_encoder", lambda weights=None, log=print: (tiny_bert(), tok(), "tiny"))
    return path


def test_cli_finetune_evaluate_predict(toy_csv, tmp_path, capsys):
    from minitl.cli import main

    out = tmp_path / "cli"
    code = main(["finetune", "--data", str(toy_csv), "--out", str(out), "--finetune-epochs", "2",
                 "--finetune-lr", "3e-3", "--max-length", "16", "--test-per-class", "10", "--train-per-class", "20",
                 "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text
    saved = json.loads((out / "run.json").read_text())
    assert saved["config"]["batch_size"] == 16 and saved["config"]["finetune_lr"] == 3e-3  # text defaults + typed
    assert main(["predict", str(out / "model.npz"), "good great film", "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert predicted[0]["text"] == "good great film" and len(predicted[0]["top"]) == 2
    assert main(["evaluate", str(out / "model.npz"), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["texts"] == 20 and 0.0 <= report["accuracy"] <= 1.0


def test_cli_compare_text_with_tfidf(toy_csv, tmp_path, capsys):
    from minitl.cli import main

    code = main(["compare", "--data", str(toy_csv), "--out", str(tmp_path / "cmp"), "--modes", "features,tfidf",
                 "--epochs", "3", "--max-length", "16", "--test-per-class", "10", "--quiet", "--no-cache"])
    assert code == 0
    out = capsys.readouterr().out
    assert "tfidf" in out and "features" in out and "TF-IDF baseline" in out
    assert main(["compare", "--data", str(toy_csv), "--modes", "bogus", "--out", str(tmp_path / "x")]) != 0


def test_cli_text_defaults_fill_what_was_not_typed():
    from minitl.cli import build_parser
    from minitl.cli import text as cli_text

    argv = ["finetune", "--data", "imdb", "--finetune-lr", "2e-5", "--max-length", "64"]
    args = build_parser().parse_args(argv)
    args.argv = argv
    assert cli_text.is_text_job(args)
    cli_text.apply_text_defaults(args)
    config = cli_text.text_config(args, "finetune")
    assert (config.finetune_lr, config.max_length, config.batch_size, config.finetune_epochs) == (2e-5, 64, 16, 2)
    assert (args.train_per_class, args.test_per_class, config.weight_decay) == (500, 500, 0.01)
    image = build_parser().parse_args(["finetune", "--data", "digits"])
    assert not cli_text.is_text_job(image)
