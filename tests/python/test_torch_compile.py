"""The losses inside a torch.compile'd model (torch >= 2.1; skipped on older
torch, which has no torch.compile): the model compiles, the loss runs
eagerly behind a graph break (see proxyloss/_compile.py), and losses,
parameter gradients and queues equal the eager model's step by step."""
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
