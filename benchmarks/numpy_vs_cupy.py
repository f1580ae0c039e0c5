"""NumPy (CPU) vs CuPy (GPU) on the same minitl graphs — a thin front to ``minitl bench``.

    python benchmarks/numpy_vs_cupy.py                  # quick preset, results in benchmarks/results/
    python benchmarks/numpy_vs_cupy.py --preset full    # ResNet sizes at 224x224 (made for a GPU machine)

Every option of ``minitl bench --help`` works here too.  On a machine without a usable GPU the
NumPy side runs alone and the report says why the GPU side was skipped.  On a GPU machine,
``bash benchmarks/gpu_check.sh`` runs the gpu tests and this benchmark in one time-boxed go.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minitl.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
