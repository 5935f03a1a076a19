// Every proxyloss op's schema, in one place: the library `proxyloss`
// (torch.ops.proxyloss.* in Python). Implementations register beside their
// code: cpu/ (CPU), generic/ (CompositeExplicitAutograd: any device),
// composite/ (CompositeImplicitAutograd: built from other ops), autograd/
// (Autograd). A CUDA backend adds TORCH_LIBRARY_IMPL(proxyloss, CUDA, m) in
// cuda/, which takes precedence over the generic implementations there.
//
// Ops whose names start with an underscore are private: the forward and
// backward halves of a differentiable op, called by its autograd Function.
// Their argument lists may change between releases.
#include <torch/library.h>

TORCH_LIBRARY(proxyloss, m) {
  // --- Smooth-AP ---------------------------------------------------------------
  m.def(
      "smooth_ap(Tensor scores, Tensor labels, float temperature, Tensor? weights=None,"
      " Tensor? anchors=None) -> Tensor");
  m.def(
      "_smooth_ap_forward(Tensor scores, Tensor labels, float temperature,"
      " Tensor? weights=None, Tensor? anchors=None) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "_smooth_ap_backward(Tensor grad_ap, Tensor scores, Tensor labels,"
      " Tensor rank_all, Tensor rank_pos, Tensor order, float temperature,"
      " Tensor? weights=None, Tensor? anchors=None) -> Tensor");

  // --- RecallAtQuantile --------------------------------------------------------
  m.def("selection_quantile(Tensor values, float q, str interpolation) -> Tensor");
  m.def(
      "soft_recall(Tensor scores, Tensor labels, Tensor thresholds, float temperature,"
      " Tensor? weights=None) -> Tensor");
  m.def(
      "_soft_recall_backward(Tensor grad_recall, Tensor scores, Tensor labels,"
      " Tensor thresholds, float temperature, Tensor? weights=None) -> Tensor");

  // --- the queued ranking pipeline ----------------------------------------------
  m.def(
      "ranking_pool(Tensor logits, Tensor targets, Tensor? queue_logits,"
      " Tensor? queue_targets, int num_classes, int ignore_index, int? max_pool_size,"
      " Tensor? sample_weight=None, Tensor? queue_weight=None)"
      " -> (Tensor scores, Tensor labels, Tensor events, Tensor weights)");
  // The same pool with each row's iid flag and whether it is a live row
  // (PAUCAtBudgetLoss's reference population and numerator).
  m.def(
      "_ranking_pool_rows(Tensor logits, Tensor targets, Tensor? queue_logits,"
      " Tensor? queue_targets, int num_classes, int ignore_index, int? max_pool_size,"
      " Tensor? sample_weight=None, Tensor? queue_weight=None, Tensor? iid_mask=None,"
      " Tensor? queue_iid=None)"
      " -> (Tensor scores, Tensor labels, Tensor events, Tensor weights, Tensor is_iid,"
      " Tensor is_live)");
  m.def(
      "_ranking_pool_forward(Tensor logits, Tensor targets, Tensor? queue_logits,"
      " Tensor? queue_targets, int num_classes, int ignore_index, int? max_pool_size,"
      " Tensor? sample_weight=None, Tensor? queue_weight=None, Tensor? iid_mask=None,"
      " Tensor? queue_iid=None)"
      " -> (Tensor scores, Tensor labels, Tensor events, Tensor weights,"
      " Tensor pool_position, Tensor is_iid)");
  m.def(
      "_ranking_pool_backward(Tensor grad_scores, Tensor pool_position, int num_classes)"
      " -> Tensor");
  m.def(
      "smooth_ap_loss(Tensor logits, Tensor targets, Tensor? queue_logits,"
      " Tensor? queue_targets, int num_classes, float temperature, str reduction,"
      " int ignore_index, int? max_pool_size, Tensor? sample_weight=None,"
      " Tensor? queue_weight=None, int share_index=0, int share_count=1)"
      " -> (Tensor loss, Tensor per_class, Tensor valid, Tensor events)");
  m.def(
      "recall_at_quantile_loss(Tensor logits, Tensor targets, Tensor? queue_logits,"
      " Tensor? queue_targets, int num_classes, float quantile, str interpolation,"
      " float temperature, str reduction, int ignore_index, int? max_pool_size,"
      " Tensor? sample_weight=None, Tensor? queue_weight=None)"
      " -> (Tensor loss, Tensor per_class, Tensor valid, Tensor events)");
  // The same with the pool's labels [M] as a fifth result (for torch.compile:
  // composite/ranking_losses.cpp).
  m.def(
      "_smooth_ap_loss_with_pool(Tensor logits, Tensor targets, Tensor? queue_logits,"
      " Tensor? queue_targets, int num_classes, float temperature, str reduction,"
      " int ignore_index, int? max_pool_size, Tensor? sample_weight=None,"
      " Tensor? queue_weight=None, int share_index=0, int share_count=1)"
      " -> (Tensor loss, Tensor per_class, Tensor valid, Tensor events,"
      " Tensor pool_labels)");
  m.def(
      "_recall_at_quantile_loss_with_pool(Tensor logits, Tensor targets,"
      " Tensor? queue_logits, Tensor? queue_targets, int num_classes, float quantile,"
      " str interpolation, float temperature, str reduction, int ignore_index,"
      " int? max_pool_size, Tensor? sample_weight=None, Tensor? queue_weight=None)"
      " -> (Tensor loss, Tensor per_class, Tensor valid, Tensor events,"
      " Tensor pool_labels)");
  // --- PAUCAtBudgetLoss ------------------------------------------------------------
  // Several quantiles of one vector by selection (O(n), torch.quantile's rules).
  m.def("selection_quantiles(Tensor values, Tensor levels, str interpolation) -> Tensor");
  m.def(
      "pauc_pairwise(Tensor positives, Tensor negatives, float tau, Tensor? weights=None)"
      " -> (Tensor pauc, Tensor per_positive)");
  m.def(
      "_pauc_pairwise_forward(Tensor positives, Tensor negatives, float tau,"
      " Tensor? weights=None) -> (Tensor pauc, Tensor per_positive)");
  m.def(
      "_pauc_pairwise_backward(Tensor grad_pauc, Tensor positives, Tensor negatives,"
      " float tau, Tensor? weights=None) -> (Tensor grad_positives,"
      " Tensor grad_negatives)");
  m.def(
      "pauc_at_budget_loss(Tensor logits, Tensor targets, Tensor? queue_logits,"
      " Tensor? queue_targets, int num_classes, float alpha, float beta, str surrogate,"
      " int n_knots, str tau_scale, str pos_numerator, str budget_basis,"
      " float temperature, str reduction, int ignore_index, str quantile_interpolation,"
      " int? max_pool_size, Tensor? sample_weight=None, Tensor? queue_weight=None,"
      " Tensor? iid_mask=None, Tensor? queue_iid=None)"
      " -> (Tensor loss, Tensor per_class, Tensor valid, Tensor events, Tensor t_alpha,"
      " Tensor t_beta, Tensor tau_eff, Tensor band_neg_count, Tensor pauc_var,"
      " Tensor scale, Tensor degenerate)");
  m.def(
      "queue_push_(Tensor(a!) queue_logits, Tensor(b!) queue_targets,"
      " Tensor(c!) queue_ptr, Tensor logits, Tensor targets,"
      " Tensor(d!)? queue_weight=None, Tensor? sample_weight=None,"
      " Tensor(e!)? queue_iid=None, Tensor? iid_mask=None) -> ()");

  // --- FairLoss ------------------------------------------------------------------
  m.def(
      "fair_loss(Tensor logits, Tensor targets, Tensor? weight, float smooth_max_beta,"
      " float scaling_factor, int ignore_index, float label_smoothing) -> Tensor");
  m.def(
      "_fair_loss_forward(Tensor logits, Tensor targets, Tensor? weight,"
      " float smooth_max_beta, float scaling_factor, int ignore_index,"
      " float label_smoothing) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "_fair_loss_backward(Tensor grad_loss, Tensor logits, Tensor targets,"
      " Tensor? weight, Tensor row_max, Tensor lse, Tensor beta_lse,"
      " float smooth_max_beta, float scaling_factor, int ignore_index,"
      " float label_smoothing) -> Tensor");
  // FairLoss whole (checks, dtype, per-row op, reduction "mean"/"sum"/"none").
  m.def(
      "fair_loss_reduced(Tensor logits, Tensor targets, Tensor? weight,"
      " float smooth_max_beta, float scaling_factor, str reduction, int ignore_index,"
      " float label_smoothing, Tensor? sample_weight=None) -> Tensor");

  // --- input checks a tracer keeps (generic/checked_values.cpp) ----------------------
  m.def(
      "_checked_values(Tensor values, Tensor bad, str message, str index_name)"
      " -> Tensor");

  // --- focal losses (built from ATen ops) -------------------------------------------
  m.def(
      "sigmoid_focal_loss(Tensor logits, Tensor targets, float alpha, float gamma,"
      " str reduction, Tensor? sample_weight=None) -> Tensor");
  m.def(
      "softmax_focal_loss(Tensor logits, Tensor targets, Tensor? alpha, float gamma,"
      " str reduction, float label_smoothing, int ignore_index, int background_class,"
      " Tensor? sample_weight=None) -> Tensor");

  // --- metrics (exact, in double, no gradient; read on the CPU) -------------------
  m.def("average_precision(Tensor scores, Tensor labels) -> float");
  m.def(
      "average_precision_per_class(Tensor logits, Tensor targets, int ignore_index)"
      " -> Tensor");
  m.def("roc_auc(Tensor scores, Tensor labels) -> float");
  m.def(
      "recall_at_quantile(Tensor scores, Tensor labels, float quantile,"
      " str interpolation) -> float");
  m.def("penalized_brier_score(Tensor probs, Tensor targets) -> float");
  m.def("penalized_log_loss(Tensor probs, Tensor targets) -> float");
}
