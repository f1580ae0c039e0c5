"""minitl: a from-scratch deep-learning engine on NumPy (CuPy on the GPU) for transfer learning."""
__version__ = "0.1.0"

from . import host_memory  # noqa: E402

host_memory.configure_from_environment()  # keep freed host memory for reuse (see host_memory; MINITL_KEEP_FREED_MEMORY=0: not)

from . import backend, functional, nn, optim  # noqa: E402
from .gradcheck import gradcheck  # noqa: E402
from .inspect import trace  # noqa: E402
from .random import manual_seed  # noqa: E402
from .tensor import Tensor, cat, concatenate, enable_grad, is_grad_enabled, no_grad, ones, stack, tensor, zeros  # noqa: E402

__all__ = [
    "Tensor", "tensor", "zeros", "ones", "cat", "concatenate", "stack", "no_grad", "enable_grad",
    "is_grad_enabled", "manual_seed", "backend", "functional", "nn", "optim", "gradcheck", "trace", "__version__",
    "models", "transfer", "train", "data",
]

# the upper layers load on first use (``minitl.transfer.load_model(...)`` works after ``import minitl``),
# so ``import minitl`` and ``minitl --help`` stay fast: ``transfer`` alone costs ~0.3 s of imports
_LAZY_SUBPACKAGES = ("models", "transfer", "train", "data", "bench", "cli")


def __getattr__(name):
    if name in _LAZY_SUBPACKAGES:
        import importlib  # noqa: PLC0415

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBPACKAGES))
