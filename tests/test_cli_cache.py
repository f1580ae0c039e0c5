"""``minitl cache ls | clear``: the feature cache a run leaves behind, listed and freed."""
import json

import pytest

pytest.importorskip("PIL")

from cli_helpers import common, make_workspace, run  # noqa: E402


def test_ls_lists_what_a_run_cached_and_clear_frees_it(capsys, tmp_path):
    ws = make_workspace(tmp_path, train=4, test=2)
    cache = tmp_path / "cache"
    code, _, err = run(capsys, "finetune", *common(ws, cache=cache), "--mode", "features", "--epochs", "1",
                       "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    (cache / "deadbeef.x.npy.123.tmp").write_bytes(b"\0" * 100)  # what a killed extraction leaves
    on_disk = sum(p.stat().st_size for p in cache.iterdir())

    code, out, _ = run(capsys, "cache", "ls", "--cache-dir", cache, "--json")
    listing = json.loads(out)
    assert listing["bytes"] == on_disk and len(listing["entries"]) == 3
    complete = [e for e in listing["entries"] if e["complete"]]
    assert sorted(e["split"] for e in complete) == ["test", "train"]
    train = next(e for e in complete if e["split"] == "train")
    assert train["images"] == 2 * 4 * 3 and train["pooled"] is True  # every image and its mirror

    code, out, _ = run(capsys, "cache", "ls", "--cache-dir", cache)
    assert code == 0 and "3 entries" in out and "leftover of an interrupted extraction" in out
    assert "train split, 24 samples, pooled features" in out

    code, out, _ = run(capsys, "cache", "clear", "--cache-dir", cache)
    assert code == 0 and "removed 3 entries" in out
    assert list(cache.iterdir()) == []
    code, out, _ = run(capsys, "cache", "ls", "--cache-dir", cache)
    assert code == 0 and "empty" in out


def test_ls_of_a_missing_folder_is_empty_not_an_error(capsys, tmp_path):
    code, out, _ = run(capsys, "cache", "ls", "--cache-dir", tmp_path / "none")
    assert code == 0 and "empty" in out
    code, out, _ = run(capsys, "cache", "clear", "--cache-dir", tmp_path / "none")
    assert code == 0 and "removed 0 entries" in out


def test_the_default_folder_follows_minitl_cache(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MINITL_CACHE", str(tmp_path))
    code, out, _ = run(capsys, "cache", "ls")
    assert code == 0 and str(tmp_path / "features") in out
