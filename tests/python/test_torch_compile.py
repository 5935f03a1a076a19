"""The losses inside a torch.compile'd model (torch >= 2.1; skipped on older
torch, which has no torch.compile): the model compiles, the queued ranking
and focal losses run eagerly behind a graph break (proxyloss/_compile.py),
FairLoss and the fixed-shape ops trace into the graph through their fake
kernels (proxyloss/_fake_kernels.py, torch >= 2.4); losses, parameter
gradients and queues equal the eager model's step by step."""
import pytest
import torch
from torch import nn

import proxyloss

pytestmark = pytest.mark.skipif(not hasattr(torch, "compile"),
                                reason=f"torch {torch.__version__} has no torch.compile")

LOSSES = {
    "SmoothAPLoss": lambda: proxyloss.SmoothAPLoss(3, queue_size=64),
    "RecallAtQuantileLoss": lambda: proxyloss.RecallAtQuantileLoss(3, quantile=0.1,
                                                                   queue_size=64),
    "FairLoss": lambda: proxyloss.FairLoss(smooth_max_beta=10.0, scaling_factor=10.0),
    "SoftmaxFocalLoss": lambda: proxyloss.SoftmaxFocalLoss(),
    "LossWarmupWrapper": lambda: proxyloss.LossWarmupWrapper(
        nn.CrossEntropyLoss(), proxyloss.SmoothAPLoss(3, queue_size=64), warmup_epochs=1,
        blend_epochs=1, temp_start=0.5, temp_end=0.05, temp_decay_steps=4),
}


class Model(nn.Module):
    def __init__(self, loss):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        self.loss = loss

    def forward(self, x, y):
        return self.loss(self.net(x), y)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_compiled_model_trains_as_the_eager_one(name):
    torch.manual_seed(0)
    eager = Model(LOSSES[name]())
    twin = Model(LOSSES[name]())
    twin.load_state_dict(eager.state_dict())
    compiled = torch.compile(twin)
    step = 0
    for epoch in range(3):
        for model in (eager, twin):
            if isinstance(model.loss, proxyloss.LossWarmupWrapper):
                model.loss.on_train_epoch_start(epoch)
        for _ in range(2):
            for model in (eager, twin):
                if isinstance(model.loss, proxyloss.LossWarmupWrapper):
                    model.loss.on_train_batch_start(step)
            x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
            want, got = eager(x, y), compiled(x, y)
            want.backward()
            got.backward()
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
            for a, b in zip(eager.parameters(), twin.parameters()):
                torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-7)
            eager.zero_grad()
            twin.zero_grad()
            step += 1
    for (key, a), (_, b) in zip(eager.state_dict().items(), twin.state_dict().items()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), key


# --- ops with fake kernels trace into the graph (torch >= 2.4) --------------------

needs_fakes = pytest.mark.skipif(not hasattr(torch.library, "register_fake"),
                                 reason=f"torch {torch.__version__} has no register_fake")
ops = proxyloss.ops


def pool(M=64, C=3):
    scores = torch.randn(M, C, dtype=torch.float64)
    labels = torch.randint(-1, C, (M,))
    labels[:C] = torch.arange(C)  # every class has a positive
    return scores, labels


@needs_fakes
@pytest.mark.parametrize("name", ["smooth_ap", "soft_recall", "selection_quantile",
                                  "fair_loss_reduced"])
def test_fixed_shape_ops_trace_without_a_graph_break(name):
    torch.manual_seed(1)
    scores, labels = pool()
    if name == "smooth_ap":
        def f(s):
            return ops.smooth_ap(s, labels, 0.1)
    elif name == "soft_recall":
        def f(s):
            return ops.soft_recall(s, labels, torch.zeros(3, dtype=s.dtype), 0.1)
    elif name == "selection_quantile":
        def f(s):
            return ops.selection_quantile(s.detach(), 0.9, "linear") * s.sum(0)
    else:
        targets = torch.randint(0, 3, (64,))

        def f(s):
            return ops.fair_loss_reduced(s, targets, None, 10.0, 10.0, "none", -100, 0.0)
    x = scores.clone().requires_grad_(True)
    y = scores.clone().requires_grad_(True)
    want = f(x)
    got = torch.compile(f, fullgraph=True)(y)  # fullgraph: a graph break is an error
    want.sum().backward()
    got.sum().backward()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y.grad, x.grad, rtol=1e-12, atol=1e-12)


@needs_fakes
def test_fair_loss_compiles_into_one_graph():
    torch.manual_seed(2)
    ce = nn.CrossEntropyLoss(weight=torch.rand(5), label_smoothing=0.1, reduction="none",
                             ignore_index=2)
    loss = proxyloss.FairLoss(ce, 10.0, 10.0)
    logits, targets = torch.randn(32, 5, dtype=torch.float64), torch.randint(0, 5, (32,))
    x = logits.clone().requires_grad_(True)
    y = logits.clone().requires_grad_(True)
    want = loss(x, targets)
    got = torch.compile(loss, fullgraph=True)(y, targets)
    want.backward()
    got.backward()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y.grad, x.grad, rtol=1e-12, atol=1e-12)
