"""The queued ranking losses: SmoothAPLoss and RecallAtQuantileLoss.

Thin ``torch.nn.Module`` s with the seed's (proxy-losses 0.1.3) signatures and
buffer names (``_q_logits``, ``_q_targets``, ``_q_ptr``, so a seed
``state_dict`` loads as it is), plus the successor's (imbalanced-losses
0.6.0) ``_q_weight`` (each queued row's sample weight; a checkpoint without
it loads with weight 1). The successor's ``_q_iid`` is not kept: these
losses never read the iid flags (PAUCAtBudgetLoss does: proxyloss/pauc.py),
and without it our checkpoints still load into the successor, which renames
only our other buffers into its ``_queue`` submodule. The loss, its gradient
and the threshold are computed by ``torch.ops.proxyloss._smooth_ap_loss_with_pool`` /
``_recall_at_quantile_loss_with_pool`` (``smooth_ap_loss`` /
``recall_at_quantile_loss`` with the pool's labels as a fifth result, which
torch.compile needs: src/ops/composite/ranking_losses.cpp); the batch enters
the queue through ``torch.ops.proxyloss.queue_push_``. Nothing is computed
here.
"""
import math
import operator

import torch
import torch.distributed as dist
from torch import nn

from proxyloss._distributed import (call_seeded, check_gather_option, gather_batch,
                                    should_gather, sum_shares)
from proxyloss._errors import call_naming, warn_user
from proxyloss._ops import EMPTY_POOL, NON_FINITE_LOGITS, SUBSAMPLED, UNEXPECTED_BINARY_LABELS, ops
from proxyloss._weights import warn_if_all_zero

_REDUCTIONS = ("mean", "sum", "none")
_INTERPOLATIONS = ("linear", "lower", "higher", "nearest", "midpoint")


class _PooledLoss(nn.Module):
    """What every queued loss shares (the ranking losses here and
    PAUCAtBudgetLoss in proxyloss/pauc.py): the options and their checks, the
    host-side queue-weight flag, the call prelude (both call forms, the
    gather decision, the iid_mask shape, the all-zero weight warning), the
    enqueue rule and the once-per-instance warnings about the op's events.
    Where the queue's buffers live is the subclass's choice."""

    def __init__(self, num_classes, queue_size, temperature, reduction, ignore_index,
                 update_queue_in_eval, gather_distributed, max_pool_size):
        super().__init__()
        name = type(self).__name__
        num_classes = _as_int(name, "num_classes", num_classes)
        queue_size = _as_int(name, "queue_size", queue_size)
        ignore_index = _as_int(name, "ignore_index", ignore_index)
        if num_classes <= 0:
            raise ValueError(f"{name}: num_classes must be a positive int, got {num_classes}")
        if queue_size < 0:
            raise ValueError(f"{name}: queue_size must be an int >= 0, got {queue_size}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if max_pool_size is not None:
            max_pool_size = _as_int(name, "max_pool_size", max_pool_size)
            if max_pool_size <= 0:
                raise ValueError(f"{name}: max_pool_size must be a positive int or None, "
                                 f"got {max_pool_size}")
        label_end = 2 if num_classes == 1 else num_classes
        if 0 <= ignore_index < label_end:
            raise ValueError(f"{name}: ignore_index must not be a valid target, got "
                             f"ignore_index={ignore_index} with num_classes={num_classes}")
        check_gather_option(name, gather_distributed)
        self.num_classes = num_classes
        self.queue_size = queue_size
        self.temperature = float(temperature)
        _check_temperature(name, self.temperature)
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.update_queue_in_eval = update_queue_in_eval
        self.gather_distributed = gather_distributed
        self.max_pool_size = max_pool_size
        self._warned = set()
        # Whether _q_weight may hold a weight other than 1 (a weighted batch
        # was queued, or a checkpoint brought one): the loss is then computed
        # weighted, and every batch writes its weights. Invariant: while it is
        # False every stored weight is 1. A host-side flag, so that unweighted
        # training never reads or writes the buffer; the numbers do not depend
        # on it (unit weights are exact).
        self._queue_weighted = False

    # Whether a gathering call shares the pair work across the ranks (the
    # op's share_index / share_count: proxyloss/_distributed.py); only
    # SmoothAPLoss's op has shares. Off: measured slower than every rank
    # computing the whole loss (bench/python/distributed_results.md), since
    # the kernels' pair work is now a fraction of the sort every rank does.
    # Private and experimental: the tests and the benchmark turn it on.
    _share_pair_work = False

    def _begin_call(self, logits, targets, iid_mask, return_per_class, sample_weight):
        """The steps before the op: the call form, the gather decision (and
        the gather), iid_mask's shape, the all-zero weight warning. (The op
        checks everything else.) Returns ``(logits, targets, iid_mask,
        sample_weight, return_per_class, seed, share)``: the global batch when
        this call gathers (``seed``: the subsampling seed the ranks agreed on,
        or None; ``share``: ``(rank, world_size)`` when the ranks share the
        pair work, else None), else the arguments."""
        name = type(self).__name__
        if iid_mask is not None and not isinstance(iid_mask, torch.Tensor):
            iid_mask, return_per_class = _seed_call_form(name, iid_mask, return_per_class)
        seed = share = None
        if self.gather_distributed is not False and should_gather(name,
                                                                  self.gather_distributed):
            share = ((dist.get_rank(), dist.get_world_size()) if self._share_pair_work
                     else None)
            (logits, targets, iid_mask, sample_weight), seed = self._gather(
                logits, targets, iid_mask, sample_weight, share is not None)
        if iid_mask is not None and iid_mask.shape != logits.shape[:1]:
            raise ValueError(f"{name}: iid_mask must have shape [N] = "
                             f"{tuple(logits.shape[:1])} (the rows of logits), got "
                             f"{tuple(iid_mask.shape)}")
        if sample_weight is not None:
            warn_if_all_zero(self, sample_weight)
        return logits, targets, iid_mask, sample_weight, return_per_class, seed, share

    # Options, besides those of _PooledLoss, that the ranks must agree on.
    _OPTION_FIELDS = ()
    # The queue's buffers besides the pointer, which the ranks' checksums
    # compare.
    _QUEUE_CONTENTS = ("_q_logits", "_q_targets", "_q_weight")

    def _queue_buffers(self):
        return [getattr(self, field) for field in self._QUEUE_CONTENTS]

    def _gather(self, logits, targets, iid_mask, sample_weight, partial_gradient):
        """The global batch (proxyloss/_distributed.py): every rank's rows in
        rank order, after checking that the ranks agree on the options, the
        queue (its pointer and a checksum of its contents) and which tensors
        they pass. Targets [N, 1] travel as [N] and iid_mask as bool
        (non-zero = iid), so that ranks may differ in those forms."""
        if isinstance(targets, torch.Tensor) and targets.dim() == 2 and targets.shape[1] == 1:
            targets = targets.reshape(-1)
        if isinstance(iid_mask, torch.Tensor) and iid_mask.dtype != torch.bool:
            iid_mask = iid_mask.ne(0)
        has_queue = self.queue_size > 0
        options = (("num_classes", self.num_classes), ("queue_size", self.queue_size),
                   ("temperature", self.temperature), ("reduction", self.reduction),
                   ("ignore_index", self.ignore_index),
                   ("update_queue_in_eval", self.update_queue_in_eval),
                   ("max_pool_size", self.max_pool_size))
        options += tuple((field, getattr(self, field)) for field in self._OPTION_FIELDS)
        if has_queue:
            options += (("queue dtype", str(self._q_logits.dtype)),
                        ("queue updated (training or update_queue_in_eval)",
                         bool(self.training or self.update_queue_in_eval)))
        return gather_batch(type(self).__name__, options,
                            (("logits", logits), ("targets", targets), ("iid_mask", iid_mask),
                             ("sample_weight", sample_weight)),
                            queue=(self._q_ptr, self._queue_buffers()) if has_queue else None,
                            shared_seed=self.max_pool_size is not None,
                            partial_gradient=partial_gradient)

    def _enqueues(self, happened):
        """Whether this call's batch enters the queue: in training (or with
        update_queue_in_eval), unless its logits were not finite or the pool
        was empty."""
        return (self.queue_size > 0 and (self.training or self.update_queue_in_eval)
                and not happened[NON_FINITE_LOGITS] and not happened[EMPTY_POOL])

    def _warn_once(self, kind, message):
        if kind not in self._warned:
            self._warned.add(kind)
            warn_user(f"{type(self).__name__}: {message} (This warning is shown once "
                      "per instance.)")

    def _warn_about(self, happened):
        if happened[NON_FINITE_LOGITS]:
            self._warn_once("nonfinite", "non-finite logits (NaN or inf) in the ranking "
                            "pool; the affected classes are NaN and the batch is not "
                            "added to the queue.")
        if happened[SUBSAMPLED]:
            self._warn_once("subsample", f"the pool exceeds max_pool_size="
                            f"{self.max_pool_size}; applying minimum-quota subsampling, "
                            "so the loss is now a stochastic approximation.")
        if happened[UNEXPECTED_BINARY_LABELS]:
            self._warn_once("binary", "binary mode (num_classes=1) expects targets in "
                            "{0, 1}; non-zero values are treated as positive.")


class _QueuedRankingLoss(_PooledLoss):
    """The memory queue as the seed's flat buffers."""

    def __init__(self, num_classes, queue_size, temperature, reduction, ignore_index,
                 update_queue_in_eval, gather_distributed, max_pool_size):
        super().__init__(num_classes, queue_size, temperature, reduction, ignore_index,
                         update_queue_in_eval, gather_distributed, max_pool_size)
        if self.queue_size > 0:
            # As the seed's buffers: float32 logits (unless the module is
            # converted), empty slots hold ignore_index; and the successor's
            # per-row weight (1 for rows queued without one).
            self.register_buffer("_q_logits", torch.zeros(self.queue_size, self.num_classes))
            self.register_buffer("_q_targets",
                                 torch.full((self.queue_size,), self.ignore_index,
                                            dtype=torch.long))
            self.register_buffer("_q_ptr", torch.zeros(1, dtype=torch.long))
            self.register_buffer("_q_weight", torch.ones(self.queue_size))

    @torch.no_grad()
    def reset_queue(self):
        """Empties the queue: zero logits, ignore_index targets, pointer 0,
        weights 1."""
        if self.queue_size > 0:
            self._q_logits.zero_()
            self._q_targets.fill_(self.ignore_index)
            self._q_ptr.zero_()
            self._q_weight.fill_(1.0)
        self._queue_weighted = False

    def _op_and_options(self):
        """The op (an OpOverload) and its arguments after the four tensors."""
        raise NotImplementedError

    def forward(self, logits, targets, iid_mask=None, return_per_class=False, *,
                sample_weight=None):
        """logits [N, C], targets [N] or [N, 1] integer class ids (0/1 in binary
        mode, ``ignore_index`` for padding). Returns the loss (a scalar for
        mean/sum, [C] for none), or ``(loss, per_class, valid)`` with
        ``return_per_class=True``.

        Both packages' call forms work: the seed's third positional argument
        is ``return_per_class`` (a bool), the successor's is ``iid_mask`` (a
        tensor [N]: which rows are an unbiased sample of the population; only
        PAUCAtBudgetLoss reads it, these losses check its shape and ignore
        it, as the successor's do). ``sample_weight`` [N]
        (finite, >= 0, detached) weights each positive's term (ranks and
        thresholds stay unweighted; a class whose positives weigh 0 is
        degenerate) and is queued with its rows.

        ``gather_distributed`` (decided at every call): None gathers when a
        torch.distributed process group of more than one rank is
        initialised, True requires a process group (a RuntimeError
        without), False never gathers. A gathering call computes the loss
        of the concatenation of every rank's batch (rank order; targets,
        ``sample_weight`` and ``iid_mask`` travel with their rows): the same
        value on every rank, and the same global batch queued on every rank,
        so the queues stay bitwise identical. Its gradient reaches this
        rank's rows times the world size: under DistributedDataParallel,
        which averages the gradients, every parameter gradient is then the
        single-process gradient of the loss on the concatenated batch (the
        successor's, imbalanced-losses 0.6.0, is 1/world_size of it). Ranks
        whose options, queues (pointer or contents) or passed tensors
        (``sample_weight``, ``iid_mask``: all or none) differ raise the same
        ValueError; every
        rank must call forward (a missing rank surfaces as the process
        group's timeout error). With ``max_pool_size`` the ranks subsample
        with rank 0's seed (one draw from each rank's generator per call).
        Details: proxyloss/_distributed.py."""
        # Kept lean: at small pools the Python here is part of the step time
        # (bench/python). The op checks the inputs and the temperature.
        name = type(self).__name__
        logits, targets, iid_mask, sample_weight, return_per_class, seed, share = (
            self._begin_call(logits, targets, iid_mask, return_per_class, sample_weight))
        has_queue = self.queue_size > 0
        queue_weight = None
        if has_queue:
            if self._q_logits.device != logits.device:
                for buffer in ("_q_logits", "_q_targets", "_q_ptr", "_q_weight"):
                    setattr(self, buffer, getattr(self, buffer).to(logits.device))
            queue_logits, queue_targets = self._q_logits, self._q_targets
            if sample_weight is not None or self._queue_weighted:
                queue_weight = self._q_weight
        else:
            queue_logits = queue_targets = None
        op, options = self._op_and_options()
        loss, per_class, valid, events, _ = call_seeded(seed, logits.device, call_naming, name,
                                                        op, logits, targets, queue_logits,
                                                        queue_targets, *options,
                                                        sample_weight, queue_weight,
                                                        *(share or ()))
        if share is not None:
            loss, per_class = sum_shares(loss, per_class)
        happened = events.tolist()
        if True in happened:
            self._warn_about(happened)
        if self._enqueues(happened):
            # While _queue_weighted is False every stored weight is 1, so an
            # unweighted batch need not write its ones.
            ops.queue_push_(self._q_logits, self._q_targets, self._q_ptr, logits, targets,
                            queue_weight, sample_weight)
            self._queue_weighted = queue_weight is not None
        if return_per_class:
            return loss, per_class, valid
        return loss

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        _migrate_successor_queue(state_dict, prefix)
        if self.queue_size > 0:
            # A checkpoint of the seed (or of proxyloss before weights): its
            # rows were queued unweighted.
            state_dict.setdefault(prefix + "_q_weight", torch.ones(self.queue_size))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)
        if self.queue_size > 0:
            with torch.no_grad():
                self._queue_weighted = bool(self._q_weight.ne(1).any())

    def extra_repr(self):
        return (f"num_classes={self.num_classes}, queue_size={self.queue_size}, "
                f"temperature={self.temperature}, reduction={self.reduction!r}, "
                f"ignore_index={self.ignore_index}")


def _migrate_successor_queue(state_dict, prefix):
    """imbalanced-losses (>= 0.3.2) keeps the queue in a submodule:
    ``_queue._q_logits / _q_targets / _q_ptr / _q_iid / _q_weight``. Renames
    them to ours (``_q_*``: the names of proxy-losses 0.1.3 and the
    successor's weight) in place; drops ``_q_iid``, which these losses do not
    read."""
    old = prefix + "_queue."
    if not any(key.startswith(old) for key in state_dict):
        return
    for field in ("_q_logits", "_q_targets", "_q_ptr", "_q_weight"):
        if old + field in state_dict:
            state_dict[prefix + field] = state_dict.pop(old + field)
    state_dict.pop(old + "_q_iid", None)


def _seed_call_form(name, third, return_per_class):
    """The seed's ``forward(logits, targets, return_per_class)``: a bool third
    argument is return_per_class. Returns (iid_mask, return_per_class)."""
    if isinstance(third, bool):
        if return_per_class is not False:
            raise TypeError(f"{name}: the third argument is iid_mask (a tensor) or, as in "
                            "proxy-losses 0.1.3, return_per_class (a bool); got the bool "
                            f"{third!r} and return_per_class={return_per_class!r}")
        return None, third
    raise ValueError(f"{name}: iid_mask must be a tensor [N] or None (or, as the seed's "
                     f"third argument, return_per_class: a bool), got {type(third).__name__}")


def _as_int(name, what, value):
    """``value`` as a Python int: any integer (int, numpy integers, a 0-dim
    integer tensor), not bool and not a float."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: {what} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name}: {what} must be an int, got {value!r}") from None


def _check_temperature(name, temperature):
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"{name}: temperature must be finite and > 0, got {temperature}")


class SmoothAPLoss(_QueuedRankingLoss):
    """1 - Smooth-AP (Brown et al. 2020) over the live batch plus a memory
    queue, one-vs-rest per class; the seed's ``SmoothAPLoss`` (proxy-losses
    0.1.3) with its arguments, plus the successor's ``max_pool_size``.

    For class c with positives P among the pool's M rows, s = logits[:, c]:
    R_i = 1 + sum_{j != i} sigmoid((s_j - s_i) / tau), R+_i the same over P,
    AP_c = mean_{i in P} R+_i / R_i, loss_c = 1 - AP_c. A class with no
    positive or no negative is left out of mean/sum (NaN with 'none').
    Computed by a fused op in O(M) memory."""

    def __init__(self, num_classes, queue_size=1024, temperature=0.01, reduction="mean",
                 ignore_index=-100, update_queue_in_eval=False, gather_distributed=None,
                 *, max_pool_size=None):
        super().__init__(num_classes, queue_size, temperature, reduction, ignore_index,
                         update_queue_in_eval, gather_distributed, max_pool_size)

    def _op_and_options(self):
        return ops._smooth_ap_loss_with_pool.default, (
            self.num_classes, self.temperature, self.reduction, self.ignore_index,
            self.max_pool_size)


class RecallAtQuantileLoss(_QueuedRankingLoss):
    """1 - soft recall of the positives above the (1 - quantile) quantile of
    the pool's scores (live batch plus queue), one-vs-rest per class; the
    seed's ``RecallAtQuantileLoss`` (proxy-losses 0.1.3) with its arguments,
    plus the successor's ``max_pool_size``.

    theta_c = quantile(s, 1 - quantile) (detached, by selection in O(M), equal
    to torch.quantile), loss_c = 1 - mean_{i in P} sigmoid((s_i - theta_c) /
    tau). A class with no positive is left out of mean/sum."""

    _OPTION_FIELDS = ("quantile", "quantile_interpolation")

    def __init__(self, num_classes, quantile=0.005, queue_size=1024, temperature=0.01,
                 reduction="mean", ignore_index=-100, update_queue_in_eval=False,
                 gather_distributed=None, quantile_interpolation="higher", *,
                 max_pool_size=None):
        super().__init__(num_classes, queue_size, temperature, reduction, ignore_index,
                         update_queue_in_eval, gather_distributed, max_pool_size)
        if not (0.0 < quantile < 1.0):
            raise ValueError(f"RecallAtQuantileLoss: quantile must be in (0, 1), got {quantile}")
        if quantile_interpolation not in _INTERPOLATIONS:
            raise ValueError(f"RecallAtQuantileLoss: quantile_interpolation must be one of "
                             f"{_INTERPOLATIONS}, got {quantile_interpolation!r}")
        self.quantile = float(quantile)
        self.quantile_interpolation = quantile_interpolation

    def _op_and_options(self):
        return ops._recall_at_quantile_loss_with_pool.default, (
            self.num_classes, self.quantile, self.quantile_interpolation, self.temperature,
            self.reduction, self.ignore_index, self.max_pool_size)
