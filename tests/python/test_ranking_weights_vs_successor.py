"""sample_weight and iid_mask on SmoothAPLoss / RecallAtQuantileLoss against
the successor imbalanced-losses 0.6.0 (installed from PyPI with --no-deps as
the oracle): values, per-class results, validity, gradients and every queue
buffer (the weights included) over random train/eval sequences that
mix weighted and unweighted calls; both call forms (the seed's bool third
argument, the successor's iid_mask); clear errors; the all-zero warning;
gradcheck in float64.

Environment: PROXYLOSS_LIBRARY and PYTHONPATH (python/) when run from the
build tree (CTest sets both), or an installed proxyloss.
"""
import random
import warnings

import pytest
import torch

import proxyloss

imbalanced_losses = pytest.importorskip("imbalanced_losses")

CASES = [(seed, kind) for seed in range(30) for kind in ("ap", "recall")]


def make_pair(kind, rng):
    C = rng.choice([1, 2, 4])
    Q = rng.choice([0, 16, 64])
    args = dict(num_classes=C, queue_size=Q, temperature=rng.choice([0.01, 0.1, 0.5]),
                reduction=rng.choice(["mean", "sum", "none"]))
    if kind == "ap":
        return C, proxyloss.SmoothAPLoss(**args), imbalanced_losses.SmoothAPLoss(**args)
    args.update(quantile=rng.choice([0.005, 0.1, 0.3]),
                quantile_interpolation=rng.choice(["linear", "lower", "higher", "nearest",
                                                   "midpoint"]))
    return (C, proxyloss.RecallAtQuantileLoss(**args),
            imbalanced_losses.RecallAtQuantileLoss(**args))


def assert_close(got, want, dtype, what):
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(got, want, rtol=tol, atol=tol, equal_nan=True, msg=what)


def random_weight(rng, N, dtype):
    """None, or weights in [0, 3) with some zeros (now and then all of one
    class's positives are zero through chance on small batches)."""
    if rng.random() < 0.3:
        return None
    weight = torch.rand(N, dtype=dtype) * 3
    weight[torch.rand(N) < 0.25] = 0
    return weight


def queue_buffers(loss):
    queue = getattr(loss, "_queue", loss)
    if not hasattr(queue, "_q_logits"):
        return ()
    return queue._q_logits, queue._q_targets, queue._q_ptr, queue._q_weight


@pytest.mark.parametrize("seed,kind", CASES)
def test_matches_the_successor_with_weights_and_masks_over_queue_sequences(seed, kind):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    C, ours, theirs = make_pair(kind, rng)
    dtype = rng.choice([torch.float32, torch.float64])
    ours.to(dtype)
    theirs.to(dtype)
    for step in range(6):
        training = rng.random() < 0.75
        ours.train(training)
        theirs.train(training)
        N = rng.randint(1, 40)
        logits = torch.randn(N, C, dtype=dtype) * rng.choice([0.1, 1.0, 5.0])
        targets = torch.randint(0, 2 if C == 1 else C, (N,))
        targets[torch.rand(N) < 0.1] = -100
        weight = random_weight(rng, N, dtype)
        iid = (torch.rand(N) < 0.6) if rng.random() < 0.5 else None
        where = f"seed {seed} step {step} weight={weight is not None}"
        x = logits.clone().requires_grad_(True)
        y = logits.clone().requires_grad_(True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-zero weights warn (tested below)
            got = ours(x, targets, iid, True, sample_weight=weight)
            want = theirs(y, targets, iid, True, sample_weight=weight)
        assert torch.equal(got[2], want[2]), f"valid: {where}"
        for g, w, what in zip(got[:2], want[:2], ("loss", "per_class")):
            assert_close(g.detach(), w.detach(), dtype, f"{what}: {where}")
        if got[0].requires_grad:
            got[0].sum().backward()
        if want[0].requires_grad:
            want[0].sum().backward()
        gx = x.grad if x.grad is not None else torch.zeros_like(x)
        gy = y.grad if y.grad is not None else torch.zeros_like(y)
        assert_close(gx, gy, dtype, f"gradient: {where}")
        for g, w in zip(queue_buffers(ours), queue_buffers(theirs), strict=True):
            assert torch.equal(g, w), f"queue: {where}"


@pytest.mark.parametrize("kind", ["ap", "recall"])
def test_unit_weights_are_bitwise_the_unweighted_loss(kind):
    torch.manual_seed(0)
    make = (proxyloss.SmoothAPLoss if kind == "ap" else proxyloss.RecallAtQuantileLoss)
    plain, weighted = make(3, queue_size=32), make(3, queue_size=32)
    for _ in range(4):
        logits = torch.randn(20, 3, dtype=torch.float64)
        targets = torch.randint(0, 3, (20,))
        x = logits.clone().requires_grad_(True)
        y = logits.clone().requires_grad_(True)
        a = plain(x, targets, return_per_class=True)
        b = weighted(y, targets, return_per_class=True,
                     sample_weight=torch.ones(20, dtype=torch.float64))
        for u, v in zip(a, b):
            assert torch.equal(u.nan_to_num(), v.nan_to_num())
        a[0].backward()
        b[0].backward()
        assert torch.equal(x.grad, y.grad)


@pytest.mark.parametrize("kind", ["ap", "recall"])
def test_sample_weight_is_detached_and_cast(kind):
    make = proxyloss.SmoothAPLoss if kind == "ap" else proxyloss.RecallAtQuantileLoss
    loss = make(3, queue_size=16, reduction="sum")
    x = torch.randn(12, 3, dtype=torch.float64, requires_grad=True)
    t = torch.arange(12) % 3
    weight = torch.rand(12, requires_grad=True)  # float32, with a graph
    out = loss(x, t, sample_weight=weight)
    assert out.dtype == torch.float64
    out.backward()
    assert weight.grad is None and x.grad is not None
    assert not loss._q_weight.requires_grad


def test_a_class_whose_positives_weigh_zero_is_degenerate():
    loss = proxyloss.SmoothAPLoss(2, queue_size=0, reduction="none")
    logits = torch.randn(8, 2, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 0, 1, 1, 0, 1, 0, 1])
    weight = torch.where(targets == 0, torch.zeros(8), torch.ones(8)).double()
    out, per_class, valid = loss(logits, targets, return_per_class=True,
                                 sample_weight=weight)
    assert valid.tolist() == [False, True]
    assert torch.isnan(per_class[0]) and torch.isfinite(per_class[1])
    out[1].backward()
    assert torch.isfinite(logits.grad).all()


def test_both_call_forms_and_their_errors():
    loss = proxyloss.SmoothAPLoss(2, queue_size=8)
    logits, targets = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    seed_form = loss(logits, targets, True)  # proxy-losses 0.1.3: return_per_class
    assert isinstance(seed_form, tuple) and len(seed_form) == 3
    iid = torch.tensor([True, False, True, True, False, True])
    successor_form = loss(logits, targets, iid, True)
    assert isinstance(successor_form, tuple) and len(successor_form) == 3
    assert loss(logits, targets, iid).dim() == 0
    assert "_q_iid" not in loss.state_dict()  # only PAUCAtBudgetLoss reads the flags
    with pytest.raises(TypeError, match="third argument is iid_mask"):
        loss(logits, targets, True, True)
    with pytest.raises(ValueError, match="iid_mask must be a tensor"):
        loss(logits, targets, [1, 0, 1, 1, 0, 1])
    with pytest.raises(ValueError, match=r"iid_mask must have shape \[N\]"):
        loss(logits, targets, torch.ones(5, dtype=torch.bool))


@pytest.mark.parametrize("bad,match", [
    (torch.tensor([1.0, -1.0, 1.0, 1.0]), "sample_weight must be finite and >= 0"),
    (torch.tensor([1.0, float("nan"), 1.0, 1.0]), "sample_weight must be finite and >= 0"),
    (torch.tensor([1.0, float("inf"), 1.0, 1.0]), "sample_weight must be finite and >= 0"),
    (torch.ones(3), r"sample_weight must have shape \[N\] with N = 4"),
    (torch.ones(4, dtype=torch.long), "sample_weight must be floating point"),
])
@pytest.mark.parametrize("kind", ["ap", "recall"])
def test_bad_weights_are_value_errors_naming_them(kind, bad, match):
    make = proxyloss.SmoothAPLoss if kind == "ap" else proxyloss.RecallAtQuantileLoss
    loss = make(2, queue_size=8)
    name = type(loss).__name__
    with pytest.raises(ValueError, match=f"{name}: .*{match}"):
        loss(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]), sample_weight=bad)
    assert int(loss._q_ptr) == 0  # nothing was queued


def test_all_zero_weights_warn_once_per_instance_at_the_callers_line():
    loss = proxyloss.RecallAtQuantileLoss(2, queue_size=8)
    logits, targets = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    with pytest.warns(UserWarning, match="sample_weight is zero everywhere") as record:
        value = loss(logits, targets, sample_weight=torch.zeros(4))
    assert record[0].filename == __file__
    assert float(value) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss(logits, targets, sample_weight=torch.zeros(4))  # once per instance


def test_weighted_gradcheck_in_float64():
    torch.manual_seed(1)
    loss = proxyloss.SmoothAPLoss(3, queue_size=0, temperature=0.5)
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    weight = torch.rand(10, dtype=torch.float64) + 0.1
    logits = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: loss(z, targets, sample_weight=weight),
                                    (logits,))
    # RecallAtQuantile's threshold is a stop-gradient (a finite difference of
    # the threshold's own row moves it): the weighted soft recall at fixed
    # thresholds, which is what is differentiated.
    thresholds = torch.tensor([0.1, -0.3, 0.2], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda z: proxyloss.ops.soft_recall(z, targets, thresholds, 0.5, weight), (logits,))
