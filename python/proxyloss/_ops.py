"""Loads libproxyloss.so, whose ops register as ``torch.ops.proxyloss.*``.

The library is the one installed beside this file (``pip install .``), or the
file named by the environment variable ``PROXYLOSS_LIBRARY`` (a development
build, e.g. ``build/libproxyloss.so``).
"""
import os

import torch

# Indices into the ``events`` tensor the ranking ops return.
NON_FINITE_LOGITS, UNEXPECTED_BINARY_LABELS, SUBSAMPLED, EMPTY_POOL = range(4)


def _library_path():
    override = os.environ.get("PROXYLOSS_LIBRARY")
    if override:
        return override
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "libproxyloss.so")
    if not os.path.exists(path):
        raise ImportError(
            f"proxyloss: the compiled library is missing ({path}); install the package "
            "with `pip install .` from a clone, or set PROXYLOSS_LIBRARY to a built "
            "libproxyloss.so"
        )
    return path


torch.ops.load_library(_library_path())
ops = torch.ops.proxyloss

from proxyloss import _fake_kernels  # noqa: E402  (after the ops exist)

_fake_kernels.register()
