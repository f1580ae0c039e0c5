"""The package's layering, checked: imports flow one way (README, "Architecture").

    backend -> tensor -> functional -> nn -> models / optim -> transfer / train -> bench / cli
    data/ stands apart: it yields NumPy arrays and imports nothing of the engine (only shapes.pair);
    models and transfer read data.preprocessing (what a pretrained network expects of its input).

Each module's imports are read with ``ast`` (lazy imports inside functions included), so a
new upward import fails this test.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minitl"

ENGINE = {"backend", "random", "tensor", "shapes"}
ALLOWED = {
    "backend": set(),
    "random": {"backend"},
    "tensor": {"backend"},
    "gradcheck": ENGINE,
    "functional": ENGINE,
    "nn": ENGINE | {"functional"},
    "optim": ENGINE | {"functional"},  # functional.parallel: an update's cache pieces on minitl's threads
    "models": ENGINE | {"functional", "nn", "data"},  # data: only data.preprocessing (test below)
    "shapes": set(),  # pair(): int-or-pair arguments; knows nothing of minitl
    "data": {"shapes"},
    "fileio": set(),  # atomic file writes: knows nothing of minitl
    "host_memory": set(),  # glibc's malloc thresholds, set by import minitl: knows nothing of minitl
    "transfer": ENGINE | {"functional", "nn", "models", "data", "fileio"},
    "distributed": ENGINE,
    "train": ENGINE | {"functional", "nn", "models", "optim", "data", "transfer", "distributed", "fileio"},
    "bench": ENGINE | {"functional", "nn", "models", "optim"},
    "inspect": ENGINE | {"gradcheck", "functional", "nn", "models", "optim", "transfer"},
    "cli": None,  # the top: may use everything
}
EXCEPTIONS: set = set()  # (module path, layer) pairs allowed against the order: none


def _layer(module_path: Path) -> str:
    rel = module_path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imported_layers(module_path: Path, root: Path = PACKAGE) -> set[str]:
    """Top-level minitl sub-packages this file imports (relative or absolute)."""
    rel_parts = module_path.relative_to(root).with_suffix("").parts
    package_parts = rel_parts[:-1] if module_path.name != "__init__.py" else rel_parts[:-1]
    tree = ast.parse(module_path.read_text(encoding="utf-8"))
    layers = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package_parts[: len(package_parts) - (node.level - 1)]) if node.level > 1 else list(package_parts)
                target = base + (node.module.split(".") if node.module else [])
                if target:
                    layers.add(target[0])
                else:  # "from .. import x" at the top: x names a sub-package
                    layers.update(alias.name for alias in node.names)
            elif node.module and node.module.split(".")[0] == "minitl":
                parts = node.module.split(".")
                layers.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "minitl" and len(parts) > 1:
                    layers.add(parts[1])
    return layers


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.name not in ("__init__.py", "__main__.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path):
    layer = _layer(path)
    assert layer in ALLOWED, f"{path}: new top-level layer {layer!r}; place it in the README's architecture and here"
    allowed = ALLOWED[layer]
    if allowed is None:
        return
    upward = {name for name in _imported_layers(path) - {layer, "__version__"} if name in ALLOWED} - allowed
    upward = {name for name in upward if (str(path.relative_to(PACKAGE)), name) not in EXCEPTIONS}
    assert not upward, f"{path.relative_to(PACKAGE)} ({layer}) imports {sorted(upward)}: against the layering"


def test_the_checker_sees_an_upward_import(tmp_path):
    """The check itself can fail: a module in nn/ importing models is caught."""
    (tmp_path / "nn").mkdir()
    fake = tmp_path / "nn" / "probe.py"
    fake.write_text("from ..models import resnet\nfrom .. import train\nimport minitl.cli\n", encoding="utf-8")
    assert _imported_layers(fake, root=tmp_path) == {"models", "train", "cli"}


@pytest.mark.parametrize("layer", ["models", "transfer"])
def test_models_and_transfer_take_only_the_preprocessing_description_from_data(layer):
    """Models carry what their input must look like; readers, loaders and transforms stay out of them."""
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and "data" in node.module.split("."):
                assert node.module.split(".")[-1] == "preprocessing", f"{path.relative_to(PACKAGE)}: from {node.module}"
