"""proxyloss: metric-aligned training losses on fused PyTorch ops.

Drop-in for the seeds' Python API: ``from proxyloss import SmoothAPLoss``
instead of ``from proxy_losses import SmoothAPLoss`` (or ``imbalanced_losses``),
``from proxyloss import FairLoss`` instead of ``from fairloss import FairLoss``.
Every number the losses and metrics return is computed by the ops in
``torch.ops.proxyloss`` (the library's C++ core); the modules hold options and
queue buffers.
"""
from proxyloss import functional, metrics
from proxyloss._ops import ops
from proxyloss.fair import FairLoss
from proxyloss.focal import SigmoidFocalLoss, SoftmaxFocalLoss
from proxyloss.pauc import PAUCAtBudgetLoss
from proxyloss.ranking import RecallAtQuantileLoss, SmoothAPLoss
from proxyloss.warmup import LossWarmupWrapper

__version__ = "0.1.0"

__all__ = ["SmoothAPLoss", "RecallAtQuantileLoss", "PAUCAtBudgetLoss", "LossWarmupWrapper",
           "FairLoss", "SigmoidFocalLoss", "SoftmaxFocalLoss", "functional", "metrics", "ops",
           "__version__"]
