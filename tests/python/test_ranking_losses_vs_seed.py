"""proxyloss.SmoothAPLoss / RecallAtQuantileLoss against the seed package
proxy-losses 0.1.3 (installed from PyPI with --no-deps as the oracle):
values, per-class results, gradients and queue buffers over random train/eval
sequences, the seed's state_dict, its errors, and gradcheck in float64.

Environment: PROXYLOSS_LIBRARY and PYTHONPATH (python/) when run from the
build tree (CTest sets both), or an installed proxyloss.
"""
import copy
import pickle
import random

import pytest
import torch

import proxy_losses
import proxyloss

CASES = [(seed, kind) for seed in range(40) for kind in ("ap", "recall")]


def make_pair(kind, rng):
    C = rng.choice([1, 2, 4])
    Q = rng.choice([0, 16, 64])
    tau = rng.choice([0.01, 0.1, 0.5])
    reduction = rng.choice(["mean", "sum", "none"])
    if kind == "ap":
        args = dict(num_classes=C, queue_size=Q, temperature=tau, reduction=reduction)
        return C, proxyloss.SmoothAPLoss(**args), proxy_losses.SmoothAPLoss(**args)
    args = dict(num_classes=C, queue_size=Q, temperature=tau, reduction=reduction,
                quantile=rng.choice([0.005, 0.1, 0.3]),
                quantile_interpolation=rng.choice(["linear", "lower", "higher", "nearest",
                                                   "midpoint"]))
    return C, proxyloss.RecallAtQuantileLoss(**args), proxy_losses.RecallAtQuantileLoss(**args)


def assert_close(got, want, dtype, what):
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(got, want, rtol=tol, atol=tol, equal_nan=True, msg=what)


@pytest.mark.parametrize("seed,kind", CASES)
def test_matches_the_seed_over_random_queue_sequences(seed, kind):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    C, ours, seed_loss = make_pair(kind, rng)
    dtype = rng.choice([torch.float32, torch.float64])
    for step in range(6):
        training = rng.random() < 0.75
        ours.train(training)
        seed_loss.train(training)
        N = rng.randint(1, 40)
        logits = torch.randn(N, C, dtype=dtype)
        if rng.random() < 0.3:
            logits = torch.round(logits * 2)  # ties
        targets = torch.randint(0, 2 if C == 1 else C, (N,))
        if rng.random() < 0.5:
            targets[torch.randint(0, N, (rng.randint(1, N),))] = -100
        x = logits.clone().requires_grad_(True)
        y = logits.clone().requires_grad_(True)
        got = ours(x, targets, return_per_class=True)
        want = seed_loss(y, targets, return_per_class=True)
        where = f"seed {seed} step {step} C={C} {ours}"
        for g, w, name in zip(got, want, ("loss", "per_class", "valid")):
            if name == "valid":
                assert torch.equal(g, w), where
            else:
                assert_close(g.detach(), w.detach(), dtype, f"{name}: {where}")
        weights = torch.randn(got[0].shape, dtype=dtype)
        (torch.nan_to_num(got[0]) * weights).sum().backward()
        seed_total = (torch.nan_to_num(want[0]) * weights).sum()
        if seed_total.requires_grad:
            seed_total.backward()
        want_grad = y.grad if y.grad is not None else torch.zeros_like(y)
        assert_close(x.grad, want_grad, dtype, f"gradient: {where}")
        # Ours adds the successor's per-row weights (all 1 without weights).
        extra = {"_q_weight"} if seed_loss.queue_size else set()
        assert set(ours.state_dict()) == set(seed_loss.state_dict()) | extra
        if extra:
            assert bool((ours._q_weight == 1).all())
        for key, value in seed_loss.state_dict().items():
            assert torch.equal(ours.state_dict()[key], value), f"{key}: {where}"


def test_a_seed_state_dict_loads_and_training_continues_identically():
    torch.manual_seed(3)
    seed_loss = proxy_losses.SmoothAPLoss(num_classes=3, queue_size=32, temperature=0.05)
    for _ in range(3):
        seed_loss(torch.randn(20, 3), torch.randint(0, 3, (20,)))
    ours = proxyloss.SmoothAPLoss(num_classes=3, queue_size=32, temperature=0.05)
    ours.load_state_dict(seed_loss.state_dict())
    logits, targets = torch.randn(20, 3), torch.randint(0, 3, (20,))
    assert_close(ours(logits, targets), seed_loss(logits, targets), torch.float32, "next step")


def test_module_protocols_keep_the_queue():
    loss = proxyloss.RecallAtQuantileLoss(num_classes=2, quantile=0.2, queue_size=8)
    loss(torch.randn(5, 2), torch.tensor([0, 1, 0, 1, 1]))
    for copy_of in (copy.deepcopy(loss), pickle.loads(pickle.dumps(loss))):
        assert torch.equal(copy_of._q_logits, loss._q_logits)
        assert torch.equal(copy_of._q_ptr, loss._q_ptr)
    double = copy.deepcopy(loss).double()
    assert double._q_logits.dtype == torch.float64
    assert double._q_targets.dtype == torch.long and double._q_ptr.dtype == torch.long
    loss.eval()
    before = loss._q_ptr.clone()
    loss(torch.randn(3, 2), torch.tensor([0, 1, 1]))
    assert torch.equal(loss._q_ptr, before)  # frozen in eval mode
    loss.reset_queue()
    assert loss._q_ptr.item() == 0 and (loss._q_targets == -100).all()


@pytest.mark.parametrize("make", [
    lambda: proxyloss.SmoothAPLoss(num_classes=0),
    lambda: proxyloss.SmoothAPLoss(num_classes=2, queue_size=-1),
    lambda: proxyloss.SmoothAPLoss(num_classes=2, temperature=0.0),
    lambda: proxyloss.SmoothAPLoss(num_classes=2, reduction="average"),
    lambda: proxyloss.RecallAtQuantileLoss(num_classes=2, quantile=1.5),
    lambda: proxyloss.RecallAtQuantileLoss(num_classes=2, quantile_interpolation="cubic"),
])
def test_bad_constructor_arguments_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_bad_inputs_raise_value_error_naming_the_argument():
    loss = proxyloss.SmoothAPLoss(num_classes=3)
    with pytest.raises(ValueError, match="logits"):
        loss(torch.randn(4, 2), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="targets"):
        loss(torch.randn(4, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="targets"):
        loss(torch.randn(4, 3), torch.tensor([0, 1, 5, 0]))


def test_non_finite_logits_warn_once_and_skip_the_queue():
    loss = proxyloss.SmoothAPLoss(num_classes=2, queue_size=8)
    logits = torch.randn(4, 2)
    logits[1, 0] = float("nan")
    with pytest.warns(UserWarning, match="non-finite"):
        out = loss(logits, torch.tensor([0, 1, 0, 1]))
    assert torch.isnan(out)
    assert loss._q_ptr.item() == 0


def test_gradcheck_in_float64():
    torch.manual_seed(0)
    logits = torch.randn(12, 2, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 1] * 6)
    loss = proxyloss.SmoothAPLoss(num_classes=2, queue_size=0, temperature=0.5)
    assert torch.autograd.gradcheck(lambda x: loss(x, targets), (logits,))
    # RecallAtQuantile's threshold is a stop-gradient (as the seed's), so a
    # finite difference that moves the threshold's own row sees it move:
    # check the soft recall at fixed thresholds, which is what is
    # differentiated.
    thresholds = torch.tensor([0.1, -0.3], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda x: proxyloss.ops.soft_recall(x, targets, thresholds, 0.5), (logits,))


def test_warnings_point_at_the_callers_line():
    loss = proxyloss.SmoothAPLoss(2, queue_size=8)
    logits = torch.tensor([[float("nan"), 0.0], [1.0, 2.0]])
    with pytest.warns(UserWarning, match="non-finite logits") as record:
        loss(logits, torch.tensor([0, 1]))
    assert record[0].filename == __file__
