"""What the losses that take ``sample_weight`` share on the Python side."""
import torch

from proxyloss._errors import warn_user


def warn_if_all_zero(module, sample_weight):
    """The successor's warning, once per instance: a non-empty weight that is
    zero everywhere leaves the loss at its zero-mass value (0) with no
    gradient, almost always a mistake. (A host read; skipped while
    torch.compile traces.)"""
    if sample_weight is None or getattr(module, "_warned_all_zero_weight", False):
        return
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and getattr(compiler, "is_compiling", lambda: False)():
        return
    if sample_weight.numel() > 0 and not bool(sample_weight.detach().ne(0).any()):
        module._warned_all_zero_weight = True
        warn_user(f"{type(module).__name__}: sample_weight is zero everywhere in this "
                  "call; the loss is 0 and gives no gradient (This warning is shown once "
                  "per instance.)")
