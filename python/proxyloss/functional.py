"""Functional forms of the stateless losses (the queued ranking losses have
no queue here: the pool is the batch), each one op call; each traces under
torch.compile (proxyloss/_fake_kernels.py)."""
import torch

from proxyloss._ops import ops


def smooth_ap_loss(logits, targets, temperature=0.01, reduction="mean", ignore_index=-100,
                   max_pool_size=None, *, sample_weight=None):
    """SmoothAPLoss over the batch alone (no queue); see proxyloss.SmoothAPLoss
    (``sample_weight``: per-row weights [N] of the positives' terms)."""
    return ops._smooth_ap_loss_with_pool(logits, targets, None, None, logits.shape[-1],
                                         float(temperature), reduction, ignore_index,
                                         max_pool_size, sample_weight)[0]


def recall_at_quantile_loss(logits, targets, quantile=0.005, temperature=0.01,
                            reduction="mean", ignore_index=-100,
                            quantile_interpolation="higher", max_pool_size=None, *,
                            sample_weight=None):
    """RecallAtQuantileLoss over the batch alone (no queue); ``sample_weight``
    as SmoothAPLoss's."""
    return ops._recall_at_quantile_loss_with_pool(logits, targets, None, None,
                                                  logits.shape[-1], float(quantile),
                                                  quantile_interpolation, float(temperature),
                                                  reduction, ignore_index, max_pool_size,
                                                  sample_weight)[0]


def pauc_at_budget_loss(logits, targets, alpha=0.0, beta=0.005, surrogate="trapezoid",
                        n_knots=2, tau_scale="iqr", pos_numerator="pool", budget_basis="fpr",
                        temperature=0.1, reduction="mean", ignore_index=-100,
                        quantile_interpolation="higher", max_pool_size=None, *,
                        iid_mask=None, sample_weight=None):
    """PAUCAtBudgetLoss over the batch alone (no queue, so ``pos_numerator``
    'live' is 'pool'); see proxyloss.PAUCAtBudgetLoss (``iid_mask``: which
    rows set the thresholds; ``sample_weight``: per-row weights [N] of the
    positives' terms)."""
    return ops.pauc_at_budget_loss(logits, targets, None, None, logits.shape[-1],
                                   float(alpha), float(beta), surrogate, n_knots, tau_scale,
                                   pos_numerator, budget_basis, float(temperature),
                                   reduction, ignore_index, quantile_interpolation,
                                   max_pool_size, sample_weight, None, iid_mask, None)[0]


def fair_loss(logits, targets, weight=None, smooth_max_beta=1000.0, scaling_factor=1000.0,
              reduction="mean", ignore_index=-100, label_smoothing=0.0, *,
              sample_weight=None):
    """FairLoss with cross-entropy options given directly; see proxyloss.FairLoss
    (``weight``: class weights [C]; ``sample_weight``: per-row weights [N])."""
    return ops.fair_loss_reduced(logits, targets, weight, float(smooth_max_beta),
                                 float(scaling_factor), reduction, ignore_index,
                                 float(label_smoothing), sample_weight)


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="mean", *,
                       sample_weight=None):
    """SigmoidFocalLoss; see proxyloss.SigmoidFocalLoss."""
    return ops.sigmoid_focal_loss(inputs, targets, float(alpha), float(gamma), reduction,
                                  sample_weight)


def softmax_focal_loss(inputs, targets, alpha=None, gamma=2.0, reduction="mean",
                       label_smoothing=0.0, ignore_index=-100, background_class=0, *,
                       sample_weight=None):
    """SoftmaxFocalLoss for inputs [N, C]; see proxyloss.SoftmaxFocalLoss.
    ``alpha``: None, or per-class weights [C] (a tensor or a sequence, as the
    module takes; a sequence becomes a float32 tensor)."""
    if alpha is not None and not isinstance(alpha, torch.Tensor):
        alpha = torch.as_tensor(alpha, dtype=torch.float32)
    return ops.softmax_focal_loss(inputs, targets, alpha, float(gamma), reduction,
                                  float(label_smoothing), ignore_index, background_class,
                                  sample_weight)


__all__ = ["smooth_ap_loss", "recall_at_quantile_loss", "pauc_at_budget_loss", "fair_loss",
           "sigmoid_focal_loss", "softmax_focal_loss"]
