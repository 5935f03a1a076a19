"""FairLoss: cross-entropy plus a smooth penalty for a wrong argmax.

The seed's ``fairloss.FairLoss`` (pytorch-fairloss 0.1.1) with its signature:
``FairLoss(cross_entropy=None, smooth_max_beta=1000.0, scaling_factor=1000.0,
reduction='mean')``, reading ``weight``, ``label_smoothing`` and
``ignore_index`` from the given ``nn.CrossEntropyLoss``. Computed by the op
``torch.ops.proxyloss.fair_loss_reduced`` (one fused pass per row forward and
backward); nothing is computed here.

Where the seed crashes we work: rows whose target is ``ignore_index`` (the
seed's one-hot fails on them) contribute nothing and are left out of the
mean; float64 logits (the seed's float32 matmul fails) compute in float64.

Per-sample weights (``sample_weight``) are ours: the seed has none. They follow
the focal losses' convention (see ``FairLoss.forward``).
"""
import math

from torch import nn

from proxyloss._errors import call_naming
from proxyloss._ops import ops
from proxyloss._weights import warn_if_all_zero

_REDUCTIONS = ("mean", "sum", "none")


class FairLoss(nn.Module):
    """For a row with logits z [C] and target y, beta = smooth_max_beta,
    k = scaling_factor:

        loss = CE + (2 sigmoid(k (smoothmax_beta(z) - z_y)) - 1) / C,
        smoothmax_beta(z) = logsumexp(beta z) / beta,

    CE being ``cross_entropy``'s per-sample loss (its weight and label
    smoothing). mean is the plain mean over the rows not ignored."""

    def __init__(self, cross_entropy=None, smooth_max_beta=1000.0, scaling_factor=1000.0,
                 reduction="mean"):
        super().__init__()
        if cross_entropy is None:
            cross_entropy = nn.CrossEntropyLoss(reduction="none")
        if not isinstance(cross_entropy, nn.CrossEntropyLoss):
            raise TypeError("FairLoss: cross_entropy must be an nn.CrossEntropyLoss, got "
                            f"{type(cross_entropy).__name__}")
        if cross_entropy.reduction != "none":
            raise ValueError(
                "FairLoss: cross_entropy must use reduction='none' (FairLoss adds the "
                "penalty per sample, then applies its own reduction), got "
                f"reduction={cross_entropy.reduction!r}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"FairLoss: reduction must be one of {_REDUCTIONS}, "
                             f"got {reduction!r}")
        self.cross_entropy = cross_entropy
        self.smooth_max_beta = float(smooth_max_beta)
        self.scaling_factor = float(scaling_factor)
        self.reduction = reduction
        if not (math.isfinite(self.smooth_max_beta) and self.smooth_max_beta > 0):
            raise ValueError("FairLoss: smooth_max_beta must be finite and > 0, got "
                             f"{smooth_max_beta}")
        if not (math.isfinite(self.scaling_factor) and self.scaling_factor >= 0):
            raise ValueError("FairLoss: scaling_factor must be finite and >= 0 (0 turns "
                             f"the penalty off), got {scaling_factor}")

    def forward(self, output, target, *, sample_weight=None):
        """output: logits [N, C] (float32/float64; float16/bfloat16 computed in
        float32); target: [N] integer class indices or ``ignore_index``.
        Returns a scalar for mean/sum, [N] for none (0 at ignored rows).

        ``sample_weight``: None (the seed's loss, unchanged), or one weight
        per row [N], floating, finite and >= 0 (else ValueError), detached and
        cast to the compute dtype. With loss_i the per-row loss above:
        none: w_i loss_i; sum: sum_i w_i loss_i; mean: sum_i w_i loss_i /
        sum_{i not ignored} w_i, divided by 1 where that mass is exactly 0
        (0, not the unweighted mean's NaN). Class weights stay inside CE."""
        warn_if_all_zero(self, sample_weight)
        ce = self.cross_entropy
        return call_naming("FairLoss", ops.fair_loss_reduced, output, target, ce.weight,
                           self.smooth_max_beta, self.scaling_factor, self.reduction,
                           ce.ignore_index, float(ce.label_smoothing), sample_weight)

    def extra_repr(self):
        return (f"smooth_max_beta={self.smooth_max_beta}, "
                f"scaling_factor={self.scaling_factor}, reduction={self.reduction!r}")
