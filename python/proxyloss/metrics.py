"""Exact evaluation metrics, in double, without gradients: the ops
``torch.ops.proxyloss.average_precision`` etc., the same code as
``proxyloss::metrics`` in C++. Inputs may be on any device and of any
floating dtype (read on the CPU); O(N log N). Binary labels: integer or bool
(non-zero = positive), or floating 0/1 (as scikit-learn reads them). Bad
inputs raise ValueError.

The ops' own warnings (TORCH_WARN) reach Python's ``warnings`` on torch 2.x
but not on 1.13 (there they go to the C++ log on stderr), so the functions
here catch whatever reaches Python and issue the documented UserWarning
themselves, once, attributed to the caller, from the result: AP is 0 only
without a positive, ROC AUC NaN only when a class is absent, recall NaN only
without a positive."""
import math
import warnings

from proxyloss._errors import warn_user
from proxyloss._ops import ops




def _quietly(op, *args):
    """The op's result, with the op's own warning (torch 2.x) held back: the
    caller issues one from the result instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return op(*args)


def average_precision(scores, labels):
    """Average precision of binary ``labels`` (non-zero = positive) ranked by
    ``scores`` [N], equal to scikit-learn's ``average_precision_score`` (tied
    scores form one step). 0.0 with a warning when there is no positive."""
    ap = _quietly(ops.average_precision, scores, labels)
    if ap == 0.0:
        warn_user("average_precision: no positive label; returning 0 (as scikit-learn)")
    return ap


def average_precision_per_class(logits, targets, ignore_index=-100):
    """One-vs-rest AP per class of ``logits`` [N, C] and ``targets`` [N]
    (rows with ``ignore_index`` left out): a [C] float64 tensor, NaN for a
    class without positives."""
    return ops.average_precision_per_class(logits, targets, ignore_index)


def roc_auc(scores, labels):
    """Area under the ROC curve, equal to scikit-learn's ``roc_auc_score``
    (ties count one half). NaN with a warning when a class is absent."""
    auc = _quietly(ops.roc_auc, scores, labels)
    if math.isnan(auc):
        warn_user("roc_auc: only one class present in labels; ROC AUC is undefined, "
              "returning NaN")
    return auc


def recall_at_quantile(scores, labels, quantile, interpolation="higher"):
    """Fraction of the positives scoring at or above the threshold
    RecallAtQuantileLoss uses: the (1 - quantile) quantile of all scores
    (torch.quantile's interpolation). NaN with a warning without positives."""
    recall = _quietly(ops.recall_at_quantile, scores, labels, float(quantile), interpolation)
    if math.isnan(recall):
        warn_user("recall_at_quantile: no positive label; returning NaN")
    return recall


def penalized_brier_score(probs, targets):
    """Penalized Brier score (Ahmadian et al. 2025) of ``probs`` [N, C] and
    ``targets`` [N]: the mean over samples of sum_j (q_j - y_j)^2, plus
    (C - 1) / C when argmax q != y (a tie on the maximum counts as correct)."""
    return ops.penalized_brier_score(probs, targets)


def penalized_log_loss(probs, targets):
    """Penalized logarithmic loss (Ahmadian et al. 2025): the mean over
    samples of -log q_y, plus log C when argmax q != y."""
    return ops.penalized_log_loss(probs, targets)


__all__ = ["average_precision", "average_precision_per_class", "roc_auc",
           "recall_at_quantile", "penalized_brier_score", "penalized_log_loss"]
