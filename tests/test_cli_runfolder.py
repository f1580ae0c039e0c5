"""``minitl finetune --out DIR``: an earlier run is never overwritten by accident; Ctrl-C says where the
checkpoint is and the exact command to resume; ``--resume`` takes the run's settings from DIR; the run
ends by naming every file it wrote, with sizes, and what the feature cache holds."""
import json
import shlex

import numpy as np
import pytest

pytest.importorskip("PIL")

from cli_helpers import common, make_workspace, run  # noqa: E402
from minitl.data import loader as loader_module  # noqa: E402


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("runfolder"))


def _finetune(ws, out, *extra):
    return ["finetune", *common(ws), "--mode", "features", "--epochs", "3", "--out", out, *extra]


def test_a_second_run_into_the_same_folder_is_refused_until_overwrite(capsys, ws):
    out = ws / "again"
    code, stdout, err = run(capsys, *_finetune(ws, out))
    assert code == 0, err
    first = (out / "model.npz").stat().st_mtime_ns
    code, _, err = run(capsys, *_finetune(ws, out))
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "already holds an earlier run" in line and "--resume" in line and "--overwrite" in line
    assert (out / "model.npz").stat().st_mtime_ns == first  # untouched
    code, _, err = run(capsys, *_finetune(ws, out, "--overwrite"))
    assert code == 0, err
    assert (out / "model.npz").stat().st_mtime_ns != first


def test_compare_refuses_a_folder_with_earlier_runs(capsys, ws):
    out = ws / "cmp"
    args = ["compare", *common(ws), "--modes", "features", "--epochs", "1", "--out", out, "--quiet"]
    code, stdout, _ = run(capsys, *args)
    assert code == 0
    folder = next(line for line in stdout.splitlines() if line.startswith(f"  {out / 'features'}/"))
    assert folder.endswith("model, checkpoint, log, curves, confusion")
    code, _, err = run(capsys, *args)
    assert code == 2 and "--overwrite" in err and "already holds" in err
    assert run(capsys, *args, "--overwrite")[0] == 0


def test_the_run_names_what_it_wrote_with_sizes_and_the_cache(capsys, ws, tmp_path):
    out = tmp_path / "sizes"
    code, stdout, err = run(capsys, "finetune", *common(ws, cache=tmp_path / "cache"), "--mode", "features",
                            "--epochs", "2", "--out", out, "--quiet")
    assert code == 0, err
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("written ("))
    listed = {line.split()[0]: line for line in lines[start + 1:] if line.startswith("  ")}
    for name in ("model.npz", "checkpoint.npz", "run.json", "settings.json"):
        path = str(out / name)
        assert path in listed, (name, stdout)
        size = (out / name).stat().st_size
        shown = listed[path].split()[1:3]  # "12.3 kB"
        factor = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[shown[1]]
        assert float(shown[0]) * factor == pytest.approx(size, rel=0.06, abs=1)
    cache_line = next(line for line in lines if line.startswith("feature cache:"))
    cached = sum(p.stat().st_size for p in (tmp_path / "cache").iterdir())
    assert "minitl cache ls" in cache_line and "minitl cache clear" in cache_line and "2 entries" in cache_line
    assert f"{cached / 1e3:.1f} kB" in cache_line or f"{cached / 1e6:.1f} MB" in cache_line


def test_ctrl_c_says_where_the_checkpoint_is_and_the_resume_command_reproduces_the_run(capsys, ws, monkeypatch):
    # an uninterrupted run for reference
    reference = ws / "whole"
    assert run(capsys, *_finetune(ws, reference, "--quiet"))[0] == 0

    out = ws / "killed"
    original_iter = loader_module.DataLoader.__iter__

    def interrupting_iter(self):
        # the second training epoch starts after the first checkpoint: press Ctrl-C there
        if self.shuffle and (out / "checkpoint.npz").exists():
            raise KeyboardInterrupt
        return original_iter(self)

    monkeypatch.setattr(loader_module.DataLoader, "__iter__", interrupting_iter)
    code, _, err = run(capsys, *_finetune(ws, out))
    monkeypatch.undo()
    assert code == 130
    lines = err.splitlines()
    where = next(i for i, line in enumerate(lines) if line.startswith("interrupted. The last checkpoint is"))
    assert lines[where - 1].strip() == "" or where == 0 or not lines[where - 1].startswith("interrupted")
    assert lines[where].endswith(str(out / "checkpoint.npz"))
    command = lines[where + 1]
    assert command.startswith("to continue: minitl finetune --out ") and command.endswith("--resume")
    argv = shlex.split(command.removeprefix("to continue: "))[1:]
    assert "--lr" not in argv and "--weights" not in argv  # the settings come from the run folder

    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    assert "resuming from" in stdout
    a, b = np.load(reference / "model.npz"), np.load(out / "model.npz")
    for name in a.files:
        if name != "__minitl_metadata__":
            assert np.array_equal(a[name], b[name]), name  # bitwise the uninterrupted run


def test_ctrl_c_before_the_first_checkpoint_says_there_is_nothing_to_resume(capsys, ws, monkeypatch):
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(loader_module.DataLoader, "__iter__", interrupted)
    code, _, err = run(capsys, *_finetune(ws, ws / "early"))
    assert code == 130
    assert "\ninterrupted before the first checkpoint" in "\n" + err.lstrip(" ")
    assert "nothing to resume" in err


def test_resume_takes_the_settings_from_the_run_and_refuses_a_flag_that_differs(capsys, ws):
    out = ws / "settings"
    assert run(capsys, *_finetune(ws, out, "--quiet"))[0] == 0
    saved = json.loads((out / "settings.json").read_text())["settings"]
    assert saved["lr"] == 0.1 and saved["epochs"] == 3 and saved["mode"] == "features"
    code, _, err = run(capsys, "finetune", "--out", out, "--resume", "--lr", "0.5")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "--lr 0.5 differs from the run's --lr 0.1" in line
    code, _, err = run(capsys, "finetune", "--out", out, "--resume", "--no-flip")
    assert code == 2 and "--no-flip on differs from the run's --no-flip off" in err
    # the same value again, or a flag that does not change what is computed, is fine
    code, stdout, err = run(capsys, "finetune", "--out", out, "--resume", "--lr", "0.1", "--quiet", "--prefetch", "1")
    assert code == 0, err
    code, _, err = run(capsys, "finetune", "--out", ws / "nothing-here", "--resume")
    assert code == 2 and "no checkpoint" in err
