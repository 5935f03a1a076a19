"""Errors from the ops, with the name of the module the user called, and
warnings attributed to the user's code."""
import sys
import warnings


def call_naming(module_name, op, *args):
    """``op(*args)``, re-raising an op's ValueError / RuntimeError with
    ``module_name`` in front, so that a bad input names the loss the user
    called as well as the op that found it: "FairLoss:
    proxyloss::fair_loss_reduced: ...". (A plain try/except: it costs nothing
    when nothing is raised. Inside a torch.compile'd graph the op's own error
    arrives without the module name: the graph runs the op, not this handler.)"""
    try:
        return op(*args)
    except (ValueError, RuntimeError) as error:
        message = str(error)
        if message.startswith(module_name + ":"):
            raise
        raise type(error)(f"{module_name}: {message}") from None


def warn_user(message):
    """A UserWarning attributed to the user's line that called into the
    package: the first frame outside proxyloss and torch (a module's forward
    is reached through torch.nn.Module.__call__, one frame or two deep
    depending on the torch version)."""
    frame, level = sys._getframe(1), 2  # stacklevel 2: the caller of this function
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in (
            "proxyloss", "torch"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)
