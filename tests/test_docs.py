"""docs/ cannot drift from the code: every code block runs and its shown output is compared, and
every code link still points at the definition it names (fix anchors with python docs/relink.py).

Fenced blocks are ``python`` (run, one namespace per page, in order), ``output`` (what the python
block before it prints, compared exactly), ``console`` (``$ minitl ...`` lines run through the CLI,
the lines after each command being its output) and ``formula`` (mathematics, not code).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.S | re.M)
KINDS = {"python", "output", "console", "formula"}

_spec = importlib.util.spec_from_file_location("docs_relink", DOCS / "relink.py")
relink = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(relink)


def _blocks(page: Path):
    return [(m[1], m[2]) for m in FENCE.finditer(page.read_text(encoding="utf-8"))]


def _norm(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def test_there_are_formula_pages():
    names = {p.stem for p in (DOCS / "formulas").glob("*.md")}
    assert {"dense-neuron", "forward-propagation", "sgd", "convolution", "max-pooling", "fine-tuning",
            "backpropagation", "batchnorm", "attention", "lstm"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_code_links_point_at_their_definitions(page):
    problems = relink.stale(page)
    assert not problems, "\n".join(problems) + "\n(run: python docs/relink.py)"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_code_block_runs_and_prints_what_the_page_shows(page, monkeypatch):
    from minitl.cli import main  # noqa: PLC0415

    monkeypatch.chdir(ROOT)
    blocks = _blocks(page)
    namespace = {"__name__": f"docs.{page.stem}"}
    for i, (kind, body) in enumerate(blocks):
        assert kind in KINDS, f"{page.name}: block {i} has type {kind!r}; use one of {sorted(KINDS)}"
        if kind == "python":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(body, f"{page.name}[block {i}]", "exec"), namespace)  # noqa: S102 (our own docs)
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            if following is not None and following[0] == "output":
                assert _norm(out.getvalue()) == _norm(following[1]), f"{page.name}: block {i} printed\n{out.getvalue()}"
            else:
                assert not out.getvalue().strip(), f"{page.name}: block {i} prints but shows no output block"
        elif kind == "output":
            assert i > 0 and blocks[i - 1][0] == "python", f"{page.name}: output block {i} follows no python block"
        elif kind == "console":
            commands = re.split(r"^\$ ", body, flags=re.M)[1:]
            assert commands, f"{page.name}: console block {i} has no '$ ' command"
            for command in commands:
                line, _, shown = command.partition("\n")
                argv = shlex.split(line)
                assert argv[0] == "minitl", f"{page.name}: only minitl commands run in console blocks, got {line!r}"
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    main(argv[1:])
                assert _norm(out.getvalue()) == _norm(shown), f"{page.name}: {line} printed\n{out.getvalue()}"
