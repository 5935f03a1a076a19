"""The losses inside a torch.compile'd model (torch >= 2.1; skipped on older
torch, which has no torch.compile). The ops have fake kernels
(proxyloss/_fake_kernels.py, torch >= 2.4), so the losses trace into the
graph: FairLoss and the focal losses whole (fullgraph=True); a queued ranking
loss up to its host read of the events, a graph break just before the queue
update, when TorchDynamo may capture ops with data-dependent output shapes
(``torch._dynamo.config.capture_dynamic_output_shape_ops = True``: the pool's
row count is data-dependent); with PyTorch's default it breaks the graph at
the loss op and runs it eagerly. Either way losses, parameter gradients and
queues equal the eager model's step by step, and bad inputs still raise."""
import pytest
import torch
from torch import nn

import proxyloss

pytestmark = pytest.mark.skipif(not hasattr(torch, "compile"),
                                reason=f"torch {torch.__version__} has no torch.compile")

needs_fakes = pytest.mark.skipif(not hasattr(torch.library, "register_fake"),
                                 reason=f"torch {torch.__version__} has no register_fake")

LOSSES = {
    "SmoothAPLoss": lambda: proxyloss.SmoothAPLoss(3, queue_size=64),
    "RecallAtQuantileLoss": lambda: proxyloss.RecallAtQuantileLoss(3, quantile=0.1,
                                                                   queue_size=64),
    "PAUCAtBudgetLoss": lambda: proxyloss.PAUCAtBudgetLoss(3, beta=0.3, queue_size=64),
    "PAUCAtBudgetLoss-pairwise": lambda: proxyloss.PAUCAtBudgetLoss(
        3, alpha=0.01, beta=0.3, surrogate="pairwise", queue_size=64),
    "FairLoss": lambda: proxyloss.FairLoss(smooth_max_beta=10.0, scaling_factor=10.0),
    "SoftmaxFocalLoss": lambda: proxyloss.SoftmaxFocalLoss(alpha=[0.2, 0.3, 0.5]),
    "LossWarmupWrapper": lambda: proxyloss.LossWarmupWrapper(
        nn.CrossEntropyLoss(), proxyloss.SmoothAPLoss(3, queue_size=64), warmup_epochs=1,
        blend_epochs=1, temp_start=0.5, temp_end=0.05, temp_decay_steps=4),
}


def capturing(capture):
    """TorchDynamo's setting for ops whose output shape depends on data, with
    its caches cleared so that the next compile sees it."""
    torch._dynamo.reset()
    return torch._dynamo.config.patch(capture_dynamic_output_shape_ops=capture)


def assert_compiled_equals_eager(f, inputs, capture=False, seed=None):
    """f(x) -> a tensor, compiled with fullgraph=True (a graph break is an
    error): the same value and gradient as eager, to 1e-12 in float64.
    ``seed``: torch's RNG is seeded with it before each call (for ops that
    draw from it)."""
    x = inputs.clone().requires_grad_(True)
    y = inputs.clone().requires_grad_(True)
    if seed is not None:
        torch.manual_seed(seed)
    want = f(x)
    with capturing(capture):
        compiled = torch.compile(f, fullgraph=True)
        if seed is not None:
            torch.manual_seed(seed)
        got = compiled(y)
    want.sum().backward()
    got.sum().backward()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y.grad, x.grad, rtol=1e-12, atol=1e-12)


class Model(nn.Module):
    def __init__(self, loss):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        self.loss = loss

    def forward(self, x, y):
        return self.loss(self.net(x), y)


@pytest.mark.parametrize("capture", [False, True], ids=["default", "capture_dynamic"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_compiled_model_trains_as_the_eager_one(name, capture):
    torch.manual_seed(0)
    eager = Model(LOSSES[name]())
    twin = Model(LOSSES[name]())
    twin.load_state_dict(eager.state_dict())
    with capturing(capture):
        compiled = torch.compile(twin)
        step = 0
        for epoch in range(3):
            for model in (eager, twin):
                if isinstance(model.loss, proxyloss.LossWarmupWrapper):
                    model.loss.on_train_epoch_start(epoch)
            for batch in (32, 20):  # a second size: TorchDynamo recompiles dynamic
                for model in (eager, twin):
                    if isinstance(model.loss, proxyloss.LossWarmupWrapper):
                        model.loss.on_train_batch_start(step)
                x, y = torch.randn(batch, 8), torch.randint(0, 3, (batch,))
                if name != "LossWarmupWrapper":  # (its cross-entropy would count them)
                    y[::7] = -100  # ignored rows: the pool is smaller than the batch
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


@pytest.mark.parametrize("capture", [False, True], ids=["default", "capture_dynamic"])
@pytest.mark.parametrize("name", ["SmoothAPLoss", "RecallAtQuantileLoss"])
def test_weighted_ranking_losses_compile_as_eager(name, capture):
    """sample_weight through a compiled queued ranking loss: the same losses,
    gradients and queue buffers (weights included) as eager, over steps that
    mix weighted and unweighted batches of two sizes."""
    torch.manual_seed(1)
    eager, twin = LOSSES[name](), LOSSES[name]()
    with capturing(capture):
        compiled = torch.compile(twin)
        for step, batch in enumerate((32, 20, 32, 20)):
            x, y = torch.randn(batch, 3), torch.randint(0, 3, (batch,))
            y[::7] = -100
            weight = torch.rand(batch) * 2 if step != 1 else None
            a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
            want, got = eager(a, y, sample_weight=weight), compiled(b, y, sample_weight=weight)
            want.backward()
            got.backward()
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-7)
    for key, value in eager.state_dict().items():
        assert torch.equal(twin.state_dict()[key], value), key


def graph_ops(explained):
    """The proxyloss ops in each graph TorchDynamo captured."""
    return [{str(node.target) for node in graph.graph.nodes
             if node.op == "call_function" and "proxyloss" in str(node.target)}
            for graph in explained.graphs]


@needs_fakes
@pytest.mark.parametrize("name", ["SmoothAPLoss", "RecallAtQuantileLoss"])
def test_a_queued_ranking_loss_traces_up_to_the_queue_update(name):
    loss = LOSSES[name]()
    x, y = torch.randn(32, 3, requires_grad=True), torch.randint(0, 3, (32,))
    with capturing(True):
        explained = torch._dynamo.explain(loss)(x, y)
    op = "proxyloss._smooth_ap_loss_with_pool" if name == "SmoothAPLoss" else \
        "proxyloss._recall_at_quantile_loss_with_pool"
    ops_seen = graph_ops(explained)

    def captured(name):  # the op, called as a packet or as its .default overload
        return any(target.split(".default")[0] == name for ops in ops_seen for target in ops)
    assert captured(op), ops_seen
    assert captured("proxyloss.queue_push_"), ops_seen
    # The one break: the host read of the events (warnings, whether to enqueue).
    assert explained.break_reasons
    assert all("tolist" in reason.reason for reason in explained.break_reasons), \
        [reason.reason for reason in explained.break_reasons]


@needs_fakes
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "mean_positive"])
def test_the_focal_losses_compile_into_one_graph(reduction):
    torch.manual_seed(3)
    softmax = proxyloss.SoftmaxFocalLoss(alpha=[0.5, 1.0, 2.0], gamma=1.5,
                                         reduction=reduction, label_smoothing=0.1)
    logits = torch.randn(40, 3, dtype=torch.float64)
    targets = torch.randint(0, 3, (40,))
    targets[::5] = -100
    losses = [(softmax, logits, targets)]
    if reduction != "mean_positive":
        sigmoid = proxyloss.SigmoidFocalLoss(alpha=0.3, gamma=0.5, reduction=reduction)
        losses.append((sigmoid, logits, torch.rand(40, 3, dtype=torch.float64)))
    for loss, inputs, labels in losses:
        assert_compiled_equals_eager(lambda x: loss(x, labels), inputs)
        weight = torch.rand(labels.shape[0], *([1] * (labels.dim() - 1)),
                            dtype=torch.float64)
        assert_compiled_equals_eager(lambda x: loss(x, labels, sample_weight=weight), inputs)


@needs_fakes
def test_value_checks_still_run_in_a_compiled_graph():
    """The graph was traced on good inputs; a later bad batch must still fail
    with the loss's own message, not be computed silently."""
    softmax = proxyloss.SoftmaxFocalLoss()
    sigmoid = proxyloss.SigmoidFocalLoss()
    ranking = proxyloss.SmoothAPLoss(3, queue_size=16)
    logits = torch.randn(8, 3)
    torch._dynamo.reset()
    compiled_softmax = torch.compile(softmax, fullgraph=True)
    compiled_sigmoid = torch.compile(sigmoid, fullgraph=True)
    compiled_softmax(logits, torch.randint(0, 3, (8,)))
    compiled_sigmoid(logits, torch.rand(8, 3))
    with pytest.raises(ValueError, match=r"targets must be in \[0, 3\).*got \[7\] at rows \[2\]"):
        compiled_softmax(logits, torch.tensor([0, 1, 7, 0, 1, 2, 0, 1]))
    with pytest.raises(ValueError, match=r"targets must be in \[0, 1\], got \[2\.5"):
        compiled_sigmoid(logits, torch.full((8, 3), 2.5))
    with capturing(True):
        compiled_ranking = torch.compile(ranking)
        compiled_ranking(logits, torch.randint(0, 3, (8,)))
        # (Compiled, the message names the op but not the module: the
        # module's re-raise, proxyloss/_errors.py, is not part of the graph.)
        with pytest.raises(ValueError, match=r"proxyloss::ranking_pool: targets must be "
                                             r"in \[0, 3\).*got \[9\] at rows \[2\]"):
            compiled_ranking(logits, torch.tensor([0, 1, 9, 0, 1, 2, 0, 1]))


# --- ops with fake kernels trace into the graph (torch >= 2.4) --------------------

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
    assert_compiled_equals_eager(f, scores)


@needs_fakes
def test_fair_loss_compiles_into_one_graph():
    torch.manual_seed(2)
    ce = nn.CrossEntropyLoss(weight=torch.rand(5), label_smoothing=0.1, reduction="none",
                             ignore_index=2)
    loss = proxyloss.FairLoss(ce, 10.0, 10.0)
    logits, targets = torch.randn(32, 5, dtype=torch.float64), torch.randint(0, 5, (32,))
    assert_compiled_equals_eager(lambda x: loss(x, targets), logits)
    weight = torch.rand(32, dtype=torch.float64)
    assert_compiled_equals_eager(lambda x: loss(x, targets, sample_weight=weight), logits)


@needs_fakes
@pytest.mark.parametrize("max_pool_size", [None, 40])
def test_the_ranking_pool_traces_with_its_data_dependent_size(max_pool_size):
    """ranking_pool keeps a data-dependent number of rows (ignore_index rows
    dropped, the queue appended): with capture_dynamic_output_shape_ops its
    fake kernel gives them an unbacked size, and a whole loss built on the
    pool traces into one graph; values and gradients equal eager."""
    torch.manual_seed(4)
    logits = torch.randn(48, 3, dtype=torch.float64)
    targets = torch.randint(0, 3, (48,))
    targets[::3] = -100
    queue_logits, queue_targets = torch.randn(16, 3), torch.randint(-100, 3, (16,)).clamp(-1)
    row_weights = torch.rand(48, dtype=torch.float64)

    def f(s):
        scores, labels, events, weights = ops.ranking_pool(
            s, targets, queue_logits, queue_targets, 3, -100, max_pool_size, row_weights)
        # The row count too; the weights travel with their rows.
        return ops.smooth_ap(scores, labels, 0.1, weights) * labels.shape[0]

    # (The subsample draws from torch's RNG: the same seed for both calls.)
    assert_compiled_equals_eager(f, logits, capture=True, seed=5)
