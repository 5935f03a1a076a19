"""proxyloss: metric-aligned training losses on fused PyTorch ops.

Drop-in for the seeds' Python API: ``from proxyloss import SmoothAPLoss``
instead of ``from proxy_losses import SmoothAPLoss``. Every number the losses
return is computed by the ops in ``torch.ops.proxyloss`` (the library's C++
core); the modules hold options and queue buffers.
"""
from proxyloss._ops import ops
from proxyloss.ranking import RecallAtQuantileLoss, SmoothAPLoss

__version__ = "0.1.0"

__all__ = ["SmoothAPLoss", "RecallAtQuantileLoss", "ops", "__version__"]
