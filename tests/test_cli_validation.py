"""Bad arguments are refused before any data or weights load, in one line that names the flag as typed."""
import pytest

from cli_helpers import run

BAD_TRAINING = [
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--batch-size", "-8"], "--batch-size must be at least 1, got -8"),
    (["--lr", "-1"], "--lr must be a positive number, got -1"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--finetune-epochs", "-1"], "--finetune-epochs must be 0 or more, got -1"),
    (["--finetune-lr", "0"], "--finetune-lr must be a positive number, got 0"),
    (["--unfreeze", "0"], "--unfreeze must be at least 1, got 0"),
    (["--input-size", "0"], "--input-size must be at least 1, got 0"),
    (["--input-size", "-32"], "--input-size must be at least 1, got -32"),
    (["--momentum", "1.5"], "--momentum must be in [0, 1), got 1.5"),
    (["--val-fraction", "1"], "--val-fraction must be between 0 and 1"),
    (["--hidden", "0"], "--hidden must be at least 1, got 0"),
    (["--time-budget", "0"], "--time-budget must be a positive number, got 0"),
    (["--eval-batch-size", "0"], "--eval-batch-size must be at least 1, got 0"),
]


@pytest.mark.parametrize("command", ["finetune", "compare"])
@pytest.mark.parametrize("flags, message", BAD_TRAINING, ids=[" ".join(f) for f, _ in BAD_TRAINING])
def test_training_flags_are_checked_before_anything_loads(capsys, tmp_path, command, flags, message):
    # neither the data nor the weights exist: a check that ran after loading would report those instead
    code, out, err = run(capsys, command, "--data", tmp_path / "no-data", "--weights", tmp_path / "no.npz",
                         "--out", tmp_path / "out", *flags)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert message in line, line
    assert "_" not in line.split(" must ")[0], line  # the flag as typed, not an internal name (finetune_epochs)
    assert not (tmp_path / "out").exists()


def test_evaluate_and_predict_check_their_flags(capsys, tmp_path):
    code, _, err = run(capsys, "predict", tmp_path / "m.npz", tmp_path / "x.png", "--top-k", "0")
    assert code == 2 and "--top-k must be at least 1, got 0" in err
    code, _, err = run(capsys, "evaluate", tmp_path / "m.npz", "--eval-batch-size", "-1")
    assert code == 2 and "--eval-batch-size must be at least 1, got -1" in err


def test_compare_with_no_modes_is_an_error(capsys, tmp_path):
    code, _, err = run(capsys, "compare", "--modes", ",", "--out", tmp_path / "o")
    assert code == 2 and "--modes" in err
