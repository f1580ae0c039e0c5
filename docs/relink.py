"""Keep the docs' code links pointing at the right lines.

A link such as [`Linear.backward`](../../minitl/functional/dense.py#L25) names a function (or a
class, or Class.method) and the line where its ``def``/``class`` stands.  When code moves, run

    python docs/relink.py            # rewrite every anchor to where the named definition now is
    python docs/relink.py --check    # only report stale anchors (tests/test_docs.py does this)
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
LINK = re.compile(r"\[`(?P<name>[A-Za-z_][\w.]*)`\]\((?P<path>[^)#\s]+\.py)#L(?P<line>\d+)(?:-L(?P<end>\d+))?\)")


def definitions(path: Path) -> dict:
    """{qualified name: (first line, last line)} of the classes and functions of a Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                found[name] = (child.lineno, child.end_lineno)
                visit(child, f"{name}.")

    visit(tree, "")
    return found


def links(page: Path):
    """(match, target file, qualified name, anchored line) for every code link of a page."""
    for match in LINK.finditer(page.read_text(encoding="utf-8")):
        yield match, (page.parent / match["path"]).resolve(), match["name"], int(match["line"])


def stale(page: Path) -> list:
    """Human-readable problems with the page's code links (empty when all point right)."""
    problems = []
    for match, target, name, line in links(page):
        if not target.is_file():
            problems.append(f"{page.name}: {match[0]} -> no such file {target}")
            continue
        where = definitions(target).get(name)
        if where is None:
            problems.append(f"{page.name}: {match[0]} -> {target.name} defines no {name}")
        elif where[0] != line:
            problems.append(f"{page.name}: {match[0]} -> {name} is at line {where[0]} now")
    return problems


def relink(page: Path) -> int:
    text = page.read_text(encoding="utf-8")
    changed = 0

    def fix(match):
        nonlocal changed
        target = (page.parent / match["path"]).resolve()
        where = definitions(target).get(match["name"]) if target.is_file() else None
        if where is None:
            return match[0]
        anchor = f"#L{where[0]}" + (f"-L{where[1]}" if match["end"] else "")
        new = f"[`{match['name']}`]({match['path']}{anchor})"
        changed += new != match[0]
        return new

    text = LINK.sub(fix, text)
    page.write_text(text, encoding="utf-8")
    return changed


def main(argv) -> int:
    pages = sorted(DOCS.rglob("*.md"))
    if "--check" in argv:
        problems = [p for page in pages for p in stale(page)]
        print("\n".join(problems) or "all code links point at their definitions")
        return 1 if problems else 0
    total = sum(relink(page) for page in pages)
    print(f"{total} anchors updated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
