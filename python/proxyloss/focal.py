"""The focal losses (Lin et al. 2017) as the successor (imbalanced-losses
0.6.0) defines them: ``SigmoidFocalLoss`` and ``SoftmaxFocalLoss``, with its
signatures. Computed by the ops ``torch.ops.proxyloss.sigmoid_focal_loss`` and
``softmax_focal_loss``; nothing is computed here.

Where the successor's ``(1 - p_t) ** gamma`` gives NaN gradients at saturated
logits for gamma < 1, ours stay finite: ``(1 - p_t)^gamma`` is taken as
``exp(gamma log(1 - p_t))`` with ``log(1 - p_t)`` from log-sigmoid /
log-softmax, never by subtraction.

``gather_distributed`` (decided at every call; proxyloss/_distributed.py):
None gathers when a torch.distributed process group of more than one rank is
initialised, True requires a process group (a RuntimeError without), False
never gathers. A gathering call computes the loss of the concatenation of
every rank's batch along dim 0 (rank order; targets and ``sample_weight``
travel with their rows), so that ``mean`` and ``mean_positive`` normalise
over the global batch: the same value on every rank (``none`` returns the
global batch's terms, as the successor). Its gradient reaches this rank's
rows times the world size: under DistributedDataParallel, which averages the
gradients, every parameter gradient is the single-process gradient on the
concatenated batch (the successor's, imbalanced-losses 0.6.0, is
1/world_size of it). Ranks whose options differ, or that do not all pass
(or all omit) ``sample_weight``, raise the same ValueError.
"""
import math

import torch
from torch import nn

from proxyloss._distributed import check_gather_option, gather_batch, should_gather
from proxyloss._errors import call_naming
from proxyloss._ops import ops
from proxyloss._weights import warn_if_all_zero


def _check_gamma(name, gamma):
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"{name}: gamma must be finite and >= 0, got {gamma}")


def _check_reduction(name, reduction, choices):
    if reduction not in choices:
        raise ValueError(f"{name}: reduction must be one of {choices}, got {reduction!r}")


class SigmoidFocalLoss(nn.Module):
    """Per element, p = sigmoid(x), target t in [0, 1]:
    loss = alpha_t (1 - p_t)^gamma BCE(x, t), 1 - p_t = p (1 - t) + (1 - p) t,
    alpha_t = alpha t + (1 - alpha)(1 - t) (alpha < 0, e.g. -1: no alpha
    weighting). Reductions none (shape of inputs), mean, sum."""

    def __init__(self, alpha=0.25, gamma=2.0, reduction="mean", gather_distributed=None):
        super().__init__()
        alpha, gamma = float(alpha), float(gamma)
        if math.isnan(alpha) or alpha > 1:
            raise ValueError("SigmoidFocalLoss: alpha must be in [0, 1], or < 0 (e.g. -1) "
                             f"to disable alpha weighting, got {alpha}")
        _check_gamma("SigmoidFocalLoss", gamma)
        _check_reduction("SigmoidFocalLoss", reduction, ("none", "mean", "sum"))
        check_gather_option("SigmoidFocalLoss", gather_distributed)
        self.alpha = alpha
        self.gamma = gamma
        self.reduction = reduction
        self.gather_distributed = gather_distributed

    def forward(self, inputs, targets, *, sample_weight=None):
        """inputs: logits of any shape (floating); targets: the same shape,
        floating 0/1 (or soft labels in [0, 1]) or bool. ``sample_weight``
        (the successor's): None, or per-element weights whose dim 0 is the
        inputs' and whose other dims broadcast to them (e.g. [N, 1, H, W]),
        finite and >= 0, detached; none scales each element, sum adds the
        scaled elements, mean divides that sum by the weight mass over all
        elements (1 where it is exactly 0)."""
        if self.gather_distributed is not False and should_gather("SigmoidFocalLoss",
                                                                  self.gather_distributed):
            (inputs, targets, sample_weight), _ = gather_batch(
                "SigmoidFocalLoss", (("alpha", self.alpha), ("gamma", self.gamma),
                                     ("reduction", self.reduction)),
                (("inputs", inputs), ("targets", targets), ("sample_weight", sample_weight)))
        warn_if_all_zero(self, sample_weight)
        return call_naming("SigmoidFocalLoss", ops.sigmoid_focal_loss, inputs, targets,
                           self.alpha, self.gamma, self.reduction, sample_weight)

    def extra_repr(self):
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"


class SoftmaxFocalLoss(nn.Module):
    """Per sample i, p = softmax(x_i), target y, eps = label_smoothing:
    loss_i = alpha[y] (1 - p_y)^gamma CE_i, CE_i torch's cross-entropy with
    label smoothing (the focal factor uses the unsmoothed p_y). Rows whose
    target is ``ignore_index`` give 0. Reductions: none, sum, mean (over the
    valid rows), mean_positive (over the valid rows whose target is not
    ``background_class``, as RetinaNet; both denominators at least 1).
    inputs (N, C) or (N, C, d1, ...), targets (N,) or (N, d1, ...)."""

    def __init__(self, alpha=None, gamma=2.0, reduction="mean", label_smoothing=0.0,
                 ignore_index=-100, background_class=0, gather_distributed=None):
        super().__init__()
        gamma, label_smoothing = float(gamma), float(label_smoothing)
        _check_gamma("SoftmaxFocalLoss", gamma)
        _check_reduction("SoftmaxFocalLoss", reduction,
                         ("none", "mean", "mean_positive", "sum"))
        if not (0.0 <= label_smoothing <= 1.0):
            raise ValueError("SoftmaxFocalLoss: label_smoothing must be in [0, 1], got "
                             f"{label_smoothing}")
        check_gather_option("SoftmaxFocalLoss", gather_distributed)
        self.gamma = gamma
        self.reduction = reduction
        self.label_smoothing = label_smoothing
        self.ignore_index = int(ignore_index)
        self.background_class = int(background_class)
        self.gather_distributed = gather_distributed
        if alpha is not None:
            alpha = torch.as_tensor(alpha, dtype=torch.float32)
            if alpha.ndim != 1:
                raise ValueError("SoftmaxFocalLoss: alpha must be a 1-D tensor (C,) of "
                                 f"per-class weights, got shape {tuple(alpha.shape)}")
            if not bool((torch.isfinite(alpha) & (alpha >= 0)).all()):
                raise ValueError("SoftmaxFocalLoss: alpha must be finite and >= 0, got "
                                 f"{alpha.tolist()}")
            self.register_buffer("alpha", alpha)
        else:
            self.alpha = None

    def forward(self, inputs, targets, *, sample_weight=None):
        """``sample_weight`` (the successor's): None, or one weight per target
        (the shape of ``targets``), finite and >= 0, detached; none scales
        each row, sum adds the scaled rows, mean / mean_positive divide that
        sum by the weight mass of the rows they count (1 where it is exactly
        0)."""
        if self.gather_distributed is not False and should_gather("SoftmaxFocalLoss",
                                                                  self.gather_distributed):
            alpha = None if self.alpha is None else tuple(self.alpha.tolist())
            (inputs, targets, sample_weight), _ = gather_batch(
                "SoftmaxFocalLoss",
                (("alpha", alpha), ("gamma", self.gamma), ("reduction", self.reduction),
                 ("label_smoothing", self.label_smoothing),
                 ("ignore_index", self.ignore_index),
                 ("background_class", self.background_class)),
                (("inputs", inputs), ("targets", targets), ("sample_weight", sample_weight)))
        if sample_weight is not None and sample_weight.shape != targets.shape:
            raise ValueError("SoftmaxFocalLoss: sample_weight must have the shape of targets "
                             f"{tuple(targets.shape)}, got {tuple(sample_weight.shape)}")
        spatial = inputs.dim() > 2
        if spatial:  # (N, C, d1, ...) -> (N d1 ..., C): one row per position
            if targets.shape != inputs.shape[:1] + inputs.shape[2:]:
                raise ValueError("SoftmaxFocalLoss: targets must have shape (N, d1, ...) = "
                                 f"{tuple(inputs.shape[:1] + inputs.shape[2:])} for inputs "
                                 f"{tuple(inputs.shape)}, got {tuple(targets.shape)}")
            rows = inputs.movedim(1, -1).reshape(-1, inputs.shape[1])
            row_targets = targets.reshape(-1)
            if sample_weight is not None:
                sample_weight = sample_weight.reshape(-1)
        else:
            rows, row_targets = inputs, targets
        warn_if_all_zero(self, sample_weight)
        loss = call_naming("SoftmaxFocalLoss", ops.softmax_focal_loss, rows, row_targets,
                           self.alpha, self.gamma, self.reduction, self.label_smoothing,
                           self.ignore_index, self.background_class, sample_weight)
        if spatial and self.reduction == "none":
            loss = loss.reshape(targets.shape)
        return loss

    def extra_repr(self):
        return (f"gamma={self.gamma}, reduction={self.reduction!r}, "
                f"label_smoothing={self.label_smoothing}, ignore_index={self.ignore_index}, "
                f"background_class={self.background_class}")
