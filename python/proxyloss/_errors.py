"""Errors from the ops, with the name of the module the user called."""
import contextlib


@contextlib.contextmanager
def naming(module_name):
    """Re-raises an op's ValueError / RuntimeError with ``module_name`` in
    front, so that a bad input names the loss the user called as well as the
    op that found it: "FairLoss: proxyloss::fair_loss_reduced: ..."."""
    try:
        yield
    except (ValueError, RuntimeError) as error:
        message = str(error)
        if message.startswith(module_name + ":"):
            raise
        raise type(error)(f"{module_name}: {message}") from None
