"""Errors from the ops, with the name of the module the user called."""


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
