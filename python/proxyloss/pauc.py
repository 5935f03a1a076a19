"""PAUCAtBudgetLoss: 1 - the normalised partial AUC over a false-positive-rate
band, with a memory queue; a drop-in for imbalanced-losses 0.6.0's
``PAUCAtBudgetLoss`` (its signature, defaults, return forms and checkpoint
layout: the queue is a submodule ``_queue`` with buffers ``_q_logits``,
``_q_targets``, ``_q_ptr``, ``_q_iid``, ``_q_weight``).

A thin ``torch.nn.Module``: the thresholds, the loss, its gradient, the
validity of each class and the diagnostics are computed by
``torch.ops.proxyloss.pauc_at_budget_loss`` (C++); the batch enters the queue
through ``torch.ops.proxyloss.queue_push_``. The options, the call forms and
the once-per-instance warnings are those of the other queued losses
(proxyloss/ranking.py).
"""
import torch
from torch import nn

from proxyloss._distributed import call_seeded
from proxyloss._errors import call_naming
from proxyloss._ops import ops
from proxyloss.ranking import _INTERPOLATIONS, _PooledLoss, _as_int

_SURROGATES = ("trapezoid", "pairwise")
_TAU_SCALES = ("iqr", "band")
_POS_NUMERATORS = ("pool", "live")
_BUDGET_BASES = ("fpr", "population")
_QUEUE_FIELDS = ("_q_logits", "_q_targets", "_q_ptr", "_q_iid", "_q_weight")
_DIAGNOSTICS = ("t_alpha", "t_beta", "tau_eff", "band_neg_count", "pauc_var")


class _MemoryQueue(nn.Module):
    """The queue's buffers, as the successor's ``_queue`` submodule holds them
    (none when queue_size is 0): the scores (float32 unless the module is
    converted), the targets (empty slots hold ignore_index), the write
    pointer, whether each row is iid (True for a row queued without a flag)
    and its sample weight (1 for a row queued without one)."""

    def __init__(self, queue_size, num_classes, ignore_index):
        super().__init__()
        self.queue_size = queue_size
        self.ignore_index = ignore_index
        if queue_size > 0:
            self.register_buffer("_q_logits", torch.zeros(queue_size, num_classes))
            self.register_buffer("_q_targets",
                                 torch.full((queue_size,), ignore_index, dtype=torch.long))
            self.register_buffer("_q_ptr", torch.zeros(1, dtype=torch.long))
            self.register_buffer("_q_iid", torch.ones(queue_size, dtype=torch.bool))
            self.register_buffer("_q_weight", torch.ones(queue_size))

    @torch.no_grad()
    def reset(self):
        if self.queue_size > 0:
            self._q_logits.zero_()
            self._q_targets.fill_(self.ignore_index)
            self._q_ptr.zero_()
            self._q_iid.fill_(True)
            self._q_weight.fill_(1.0)


def _queue_buffer(field):
    """The loss's ``field`` is its queue's (as the successor's properties)."""
    def get(self):
        return getattr(self._queue, field)

    def set_(self, value):
        setattr(self._queue, field, value)

    return property(get, set_, doc=f"The queue's ``{field}`` buffer.")


class PAUCAtBudgetLoss(_PooledLoss):
    r"""1 - normalised partial AUC over the FPR band [alpha, beta], one-vs-rest
    per class, over the live batch plus a memory queue of earlier batches.

    For class c the pool is the live rows then the queue's rows (rows whose
    target is ``ignore_index`` dropped, optionally subsampled to
    ``max_pool_size``); s = the pool's ``logits[:, c]``, positives P are the
    rows of class c (binary mode, ``num_classes=1``: non-zero targets), the
    others are negatives. The thresholds are quantiles (``torch.quantile``'s
    rules, ``quantile_interpolation``) of a detached reference population:
    the iid negatives (``budget_basis='fpr'``, so that a threshold at level
    1 - f has false-positive rate f) or every iid row (``'population'``, a
    top-k budget). ``t_alpha`` = Q(1 - alpha), ``t_beta`` = Q(1 - beta).
    The sigmoid's temperature is ``tau = temperature * scale`` with
    ``scale`` = the reference's interquartile range Q(0.75) - Q(0.25)
    (``tau_scale='iqr'``) or the band width t_alpha - t_beta (``'band'``),
    which makes the loss invariant to an affine rescaling of the scores.

    ``surrogate='trapezoid'``: K = ``n_knots`` thresholds t_k = Q(1 - f_k),
    f_k uniform on [alpha, beta] (the end knots are t_alpha and t_beta);

        TPR_k = mean_{i in P'} sigmoid((s_i - t_k) / tau),
        pAUC  = 1/(K - 1) sum_k w_k TPR_k,   w = [1/2, 1, ..., 1, 1/2],

    the composite trapezoid rule for the normalised area under the ROC curve
    over the band. ``surrogate='pairwise'``: with B the negatives (iid or
    not) whose scores lie in [t_beta, t_alpha],

        pAUC = mean_{i in P', j in B} sigmoid((s_i - s_j) / tau).

    P' is every pooled positive (``pos_numerator='pool'``) or the live
    batch's positives only (``'live'``). With ``sample_weight`` the means
    over P' are weighted by the positives' weights (queued rows keep the
    weight they were queued with); thresholds, tau and the band are
    unweighted. loss_c = 1 - pAUC_c. The gradient reaches the live
    positives (and, pairwise, the live band negatives); thresholds and tau
    are stop-gradients.

    A class is invalid (left out of mean/sum, NaN in ``per_class`` and under
    'none') when it has no positive or no iid negative, no live positive
    under ``pos_numerator='live'``, zero positive weight mass when weighted,
    a near-zero dispersion (``scale <= 1e-12``: warned once), or
    (pairwise) an empty band.

    ``iid_mask`` [N] (any dtype, non-zero = iid) marks the live rows that
    are an unbiased sample of the population; only iid rows set the
    thresholds. It is queued with the rows.

    Differences from imbalanced-losses 0.6.0 (the numbers are the same):

    - the seed's (proxy-losses 0.1.3) call form ``forward(logits, targets,
      return_per_class)`` with a bool third argument works too (the
      successor raises an AttributeError on it);
    - multi-class targets outside [0, C) (other than ``ignore_index``) are a
      ValueError (the successor silently makes them negatives of every
      class), and ``ignore_index`` may not be a valid target;
    - ``temperature`` must be finite (the successor accepts NaN and inf);
    - float16 / bfloat16 logits are ranked in float32 (the successor's
      ``torch.quantile`` refuses them), and the diagnostics are float32;
    - non-finite logits give a NaN loss and a warning, once, and that batch
      is not queued (the successor queues it, poisoning later thresholds);
    - binary targets outside {0, 1} warn once per instance (the successor
      warns at every call, also for such rows still in the queue);
    - the near-zero-dispersion warning names the class and the quantity that
      vanished;
    - across processes (``gather_distributed``) the gradient is exact under
      DistributedDataParallel (the successor's is 1/world_size of it: see
      ``forward``), and ranks that disagree on the options, the queue's
      pointer or on passing ``sample_weight`` / ``iid_mask`` raise a
      ValueError (the successor's collectives desynchronise);
    - once a weighted batch has been queued the loss stays on the weighted
      path until ``reset_queue()`` (the successor returns to the unweighted
      path when no stored weight differs from 1): the same numbers, up to
      rounding.
    """

    _OPTION_FIELDS = ("alpha", "beta", "surrogate", "n_knots", "tau_scale", "pos_numerator",
                      "budget_basis", "quantile_interpolation")
    _QUEUE_CONTENTS = ("_q_logits", "_q_targets", "_q_iid", "_q_weight")

    _q_logits = _queue_buffer("_q_logits")
    _q_targets = _queue_buffer("_q_targets")
    _q_ptr = _queue_buffer("_q_ptr")
    _q_iid = _queue_buffer("_q_iid")
    _q_weight = _queue_buffer("_q_weight")

    def __init__(self, num_classes, alpha=0.0, beta=0.005, surrogate="trapezoid", n_knots=2,
                 tau_scale="iqr", pos_numerator="pool", budget_basis="fpr", queue_size=1024,
                 temperature=0.1, reduction="mean", ignore_index=-100,
                 update_queue_in_eval=False, gather_distributed=None,
                 quantile_interpolation="higher", max_pool_size=None):
        name = type(self).__name__
        alpha, beta = _as_float(name, "alpha", alpha), _as_float(name, "beta", beta)
        if not 0.0 <= alpha < beta <= 1.0:
            raise ValueError(f"{name}: alpha and beta must satisfy 0 <= alpha < beta <= 1, "
                             f"got alpha={alpha}, beta={beta}")
        n_knots = _as_int(name, "n_knots", n_knots)
        if n_knots < 2:
            raise ValueError(f"{name}: n_knots must be an int >= 2, got {n_knots}")
        for what, value, choices in (("surrogate", surrogate, _SURROGATES),
                                     ("tau_scale", tau_scale, _TAU_SCALES),
                                     ("pos_numerator", pos_numerator, _POS_NUMERATORS),
                                     ("budget_basis", budget_basis, _BUDGET_BASES),
                                     ("quantile_interpolation", quantile_interpolation,
                                      _INTERPOLATIONS)):
            if value not in choices:
                raise ValueError(f"{name}: {what} must be one of {choices}, got {value!r}")
        super().__init__(num_classes, queue_size, temperature, reduction, ignore_index,
                         update_queue_in_eval, gather_distributed, max_pool_size)
        self.alpha = alpha
        self.beta = beta
        self.surrogate = surrogate
        self.n_knots = n_knots
        self.tau_scale = tau_scale
        self.pos_numerator = pos_numerator
        self.budget_basis = budget_basis
        self.quantile_interpolation = quantile_interpolation
        self._queue = _MemoryQueue(self.queue_size, self.num_classes, self.ignore_index)

    def reset_queue(self):
        """Empties the queue: zero logits, ignore_index targets, pointer 0,
        every row iid, weights 1."""
        self._queue.reset()
        self._queue_weighted = False

    def forward(self, logits, targets, iid_mask=None, return_per_class=False,
                return_diagnostics=False, *, sample_weight=None):
        """logits [N, C], targets [N] or [N, 1] integer class ids (0/1 in binary
        mode, ``ignore_index`` for padding), iid_mask [N] (optional; non-zero
        = iid), sample_weight [N] (optional; finite, >= 0, detached).

        Returns the loss (a scalar for mean/sum, [C] for none); with
        ``return_per_class`` also ``per_class`` [C] (NaN where invalid) and
        ``valid`` [C] bool; with ``return_diagnostics`` also a dict of
        detached [C] tensors: ``t_alpha``, ``t_beta``, ``tau_eff``,
        ``pauc_var`` (the population variance of the positives' pAUC terms;
        NaN where invalid), ``band_neg_count`` (iid negatives in [t_beta,
        t_alpha]; 0 where invalid) and ``grad_pos_count`` (this call's
        non-ignored positives; this rank's own when gathering, as the
        successor's). Forms: ``loss``, ``(loss, per_class, valid)``,
        ``(loss, stats)``, ``(loss, per_class, valid, stats)``. A bool
        third positional argument is ``return_per_class`` (the seed's
        form), a tensor is ``iid_mask`` (the successor's).

        ``gather_distributed`` as for SmoothAPLoss (decided at every call;
        proxyloss/_distributed.py): a gathering call computes the loss of
        the concatenation of every rank's batch (rank order; targets,
        ``iid_mask`` and ``sample_weight`` travel with their rows; "live"
        is that global batch), the same on every rank, queues it on every
        rank (identical queues), and its gradient reaches this rank's rows
        times the world size, so that after DistributedDataParallel's
        averaging every parameter gradient is the single-process gradient
        on the concatenated batch."""
        name = type(self).__name__
        local_logits, local_targets = logits, targets
        logits, targets, iid_mask, sample_weight, return_per_class, seed, _ = (
            self._begin_call(logits, targets, iid_mask, return_per_class, sample_weight))
        queue = self._queue
        queue_weight = None
        if self.queue_size > 0:
            if queue._q_logits.device != logits.device:
                queue.to(logits.device)
            queue_logits, queue_targets, queue_iid = (queue._q_logits, queue._q_targets,
                                                      queue._q_iid)
            if sample_weight is not None or self._queue_weighted:
                queue_weight = queue._q_weight
        else:
            queue_logits = queue_targets = queue_iid = None
        (loss, per_class, valid, events, t_alpha, t_beta, tau_eff, band_neg_count, pauc_var,
         scale, degenerate) = call_seeded(
            seed, logits.device, call_naming, name, ops.pauc_at_budget_loss.default, logits,
            targets, queue_logits, queue_targets, self.num_classes, self.alpha, self.beta,
            self.surrogate, self.n_knots, self.tau_scale, self.pos_numerator,
            self.budget_basis, self.temperature, self.reduction, self.ignore_index,
            self.quantile_interpolation, self.max_pool_size, sample_weight, queue_weight,
            iid_mask, queue_iid)
        # One host read for the events and the degenerate classes.
        flags = torch.cat((events, degenerate)).tolist()
        happened = flags[:len(events)]
        if True in happened:
            self._warn_about(happened)
        if True in flags[len(events):]:
            self._warn_degenerate(flags.index(True, len(events)) - len(events), scale)
        if self._enqueues(happened):
            ops.queue_push_(queue._q_logits, queue._q_targets, queue._q_ptr, logits, targets,
                            queue_weight, sample_weight, queue._q_iid, iid_mask)
            self._queue_weighted = queue_weight is not None
        out = (loss, per_class, valid) if return_per_class else (loss,)
        if return_diagnostics:
            stats = dict(zip(_DIAGNOSTICS, (t_alpha.detach(), t_beta.detach(),
                                            tau_eff.detach(), band_neg_count.detach(),
                                            pauc_var.detach())))
            stats["grad_pos_count"] = self._grad_pos_count(local_logits, local_targets)
            out += (stats,)
        return out if len(out) > 1 else loss

    def _grad_pos_count(self, logits, targets):
        """The live batch's non-ignored positives per class (int64 [C]): the
        rows whose gradient the loss can reach (before subsampling and
        pos_numerator, as the successor counts them)."""
        with torch.no_grad():
            if targets.dim() == 2 and targets.shape[1] == 1:
                targets = targets.reshape(-1)
            kept = targets[targets != self.ignore_index].long()
            if self.num_classes == 1:
                count = kept.ne(0).sum().reshape(1)
            else:  # the op refused targets outside [0, C)
                count = torch.bincount(kept, minlength=self.num_classes)
            return count.to(logits.device)

    def _warn_degenerate(self, c, scale):
        ref = ("the pooled iid rows (positives and negatives)"
               if self.budget_basis == "population" else "the iid negatives")
        what = ("interquartile range" if self.tau_scale == "iqr"
                else "band width t_alpha - t_beta")
        if self.alpha == 0.0:
            note = f"with alpha=0, t_alpha is the maximum of {ref}"
        else:
            note = (f"at least ~{1.0 / self.alpha:.4g} reference rows are needed to "
                    f"resolve the tail quantile at alpha={self.alpha:.4g}")
        self._warn_once(
            "degenerate",
            f"the reference scores' {what} is near zero for class {c} "
            f"(scale={float(scale[c]):.2e} <= 1e-12), so the temperature cannot be "
            f"calibrated; the class is skipped (marked invalid). The band edges and the "
            f"scale are computed over {ref}: these scores are equal (or nearly), or there "
            f"are too few of them for the band [{self.alpha}, {self.beta}] ({note}). To "
            f"fix: increase queue_size, or make sure {ref} cover a meaningful score range.")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        # The successor's flat keys of before its queue submodule (which it
        # renames too), and its defaults for a checkpoint without iid flags
        # or weights (every row iid, weight 1).
        nested = prefix + "_queue."
        for field in _QUEUE_FIELDS:
            if prefix + field in state_dict and nested + field not in state_dict:
                state_dict[nested + field] = state_dict.pop(prefix + field)
        if self.queue_size > 0:
            state_dict.setdefault(nested + "_q_iid",
                                  torch.ones(self.queue_size, dtype=torch.bool))
            state_dict.setdefault(nested + "_q_weight", torch.ones(self.queue_size))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)
        # The queue submodule loads after this; its weights are these.
        weight = state_dict.get(nested + "_q_weight")
        if self.queue_size > 0 and isinstance(weight, torch.Tensor):
            with torch.no_grad():
                self._queue_weighted = bool(weight.ne(1).any())

    def extra_repr(self):
        return (f"num_classes={self.num_classes}, alpha={self.alpha}, beta={self.beta}, "
                f"surrogate={self.surrogate!r}, n_knots={self.n_knots}, "
                f"tau_scale={self.tau_scale!r}, pos_numerator={self.pos_numerator!r}, "
                f"budget_basis={self.budget_basis!r}, queue_size={self.queue_size}, "
                f"temperature={self.temperature}, reduction={self.reduction!r}, "
                f"ignore_index={self.ignore_index}, "
                f"quantile_interpolation={self.quantile_interpolation!r}")


def _as_float(name, what, value):
    """``value`` as a Python float (a real number or a 0-dim tensor)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {what} must be a real number, got {value!r}") from None
