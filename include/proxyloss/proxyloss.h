// proxyloss: differentiable proxy losses for ranking and scoring metrics, on
// LibTorch. The umbrella header: include this one.
#pragma once

#include "proxyloss/compat.h"
#include "proxyloss/distributed.h"
#include "proxyloss/fair_loss.h"
#include "proxyloss/fair_loss_op.h"
#include "proxyloss/focal_loss.h"
#include "proxyloss/loss_warmup_wrapper.h"
#include "proxyloss/metrics.h"
#include "proxyloss/ops.h"
#include "proxyloss/pauc_at_budget_loss.h"
#include "proxyloss/per_class_loss.h"
#include "proxyloss/queued_ranking_loss.h"
#include "proxyloss/ranking_loss_control.h"
#include "proxyloss/recall_at_quantile_loss.h"
#include "proxyloss/reduction.h"
#include "proxyloss/sample_weighted_loss.h"
#include "proxyloss/smooth_ap_loss.h"
#include "proxyloss/version.h"
