"""How the modules behave under torch.compile (torch >= 2.1).

The queued ranking losses and the focal losses read data-dependent facts on
the host (the pool's size after dropping ignore_index rows, which events
happened, the targets' values), so they cannot be traced into a graph yet.
Their forward is therefore run eagerly by TorchDynamo: a graph break at the
loss call, with the model before it compiled and gradients flowing through
the break as usual. (FairLoss has no such step: it traces, through the fake
kernels of _fake_kernels.py.) On torch without ``torch.compiler`` (1.13)
this is a no-op.
"""
import torch


def eager_under_compile(forward):
    disable = getattr(getattr(torch, "compiler", None), "disable", None)
    return forward if disable is None else disable(forward)
