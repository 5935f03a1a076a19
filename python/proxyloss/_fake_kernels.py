"""Fake (meta) implementations of the ops whose output shapes follow from
their input shapes, so that torch.compile (torch >= 2.4, which has
``torch.library.register_fake``) traces them into its graph instead of
breaking it: the per-class Smooth-AP and soft-recall ops with their private
halves, the selection quantile, FairLoss's halves, the value checks
that the composite losses run (_checked_values), the in-place queue update, and the ranking pool's halves, whose row count depends on the
targets' values (ignore_index rows are dropped): its fake kernel returns a
pool of an unknown size (an unbacked SymInt), which the per-class ops' fakes
carry through. Each returns empty tensors of the shapes, dtypes and devices
the real implementations return (see the op contracts in src/ops/*.h).

The losses built from these ops (smooth_ap_loss, recall_at_quantile_loss)
are composite: a tracer follows them into these ops, so a queued ranking
loss traces whole; the module's graph breaks only where it reads the
events on the host (proxyloss/ranking.py)."""
import torch

# The dtype the ops compute in: float16 / bfloat16 logits are ranked in float32.
_WIDENED = (torch.float16, torch.bfloat16)


def register():
    register_fake = getattr(torch.library, "register_fake", None)
    if register_fake is None:  # torch < 2.4
        return

    @register_fake("proxyloss::_smooth_ap_forward")
    def _(scores, labels, temperature, weights=None, anchors=None):
        M, C = scores.shape
        # The CPU kernel saves each class's sort order [C, M]; the
        # device-generic implementation saves none ([0]).
        order_shape = (C, M) if scores.device.type == "cpu" else (0,)
        return (scores.new_empty((C,)), scores.new_empty((M,)), scores.new_empty((M,)),
                labels.new_empty(order_shape))

    @register_fake("proxyloss::_smooth_ap_backward")
    def _(grad_ap, scores, labels, rank_all, rank_pos, order, temperature, weights=None,
          anchors=None):
        return torch.empty_like(scores)

    @register_fake("proxyloss::_ranking_pool_forward")
    def _(logits, targets, queue_logits, queue_targets, num_classes, ignore_index,
          max_pool_size, sample_weight=None, queue_weight=None, iid_mask=None,
          queue_iid=None):
        pool_rows = torch.library.get_ctx().new_dynamic_size()
        dtype = torch.float32 if logits.dtype in _WIDENED else logits.dtype
        return (logits.new_empty((pool_rows, logits.shape[1]), dtype=dtype),
                logits.new_empty((pool_rows,), dtype=torch.long),
                logits.new_empty((4,), dtype=torch.bool),
                logits.new_empty((pool_rows,), dtype=dtype),
                logits.new_empty((logits.shape[0],), dtype=torch.long),
                logits.new_empty((pool_rows,), dtype=torch.bool))

    @register_fake("proxyloss::_ranking_pool_backward")
    def _(grad_scores, pool_position, num_classes):
        return grad_scores.new_empty((pool_position.shape[0], num_classes))

    @register_fake("proxyloss::soft_recall")
    def _(scores, labels, thresholds, temperature, weights=None):
        return scores.new_empty((scores.shape[1],))

    @register_fake("proxyloss::_soft_recall_backward")
    def _(grad_recall, scores, labels, thresholds, temperature, weights=None):
        return torch.empty_like(scores)

    @register_fake("proxyloss::selection_quantile")
    def _(values, q, interpolation):
        return values.new_empty(() if values.dim() == 1 else (values.shape[1],))

    @register_fake("proxyloss::_fair_loss_forward")
    def _(logits, targets, weight, smooth_max_beta, scaling_factor, ignore_index,
          label_smoothing):
        rows = logits.shape[0]
        return tuple(logits.new_empty((rows,)) for _ in range(4))

    @register_fake("proxyloss::_fair_loss_backward")
    def _(grad_loss, logits, targets, weight, row_max, lse, beta_lse, smooth_max_beta,
          scaling_factor, ignore_index, label_smoothing):
        return torch.empty_like(logits)

    @register_fake("proxyloss::_checked_values")
    def _(values, bad, message, index_name):
        # The check itself runs when the compiled graph runs.
        return torch.empty_like(values)

    @register_fake("proxyloss::queue_push_")
    def _(queue_logits, queue_targets, queue_ptr, logits, targets, queue_weight=None,
          sample_weight=None, queue_iid=None, iid_mask=None):
        return None
