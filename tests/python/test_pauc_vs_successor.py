"""proxyloss.PAUCAtBudgetLoss against imbalanced-losses 0.6.0's
PAUCAtBudgetLoss (installed from PyPI with --no-deps as the oracle).

Over random sequences of train/eval steps with queues (Q in {0, 16, 64}) and
every option (band, surrogate, knots, tau_scale, pos_numerator,
budget_basis, the 5 interpolations, reductions, ignore_index rows,
max_pool_size under the same torch seed, C in {1, 2, 4}, float32/float64,
with and without sample_weight and iid_mask): the loss, its gradient,
per_class, valid, the diagnostics (t_alpha, t_beta and tau_eff bitwise,
the counts exactly) and every queue buffer after every step. Then: the
default options with a big queue, both call forms and the 4 return forms,
the degenerate, empty-pool, non-finite and binary-label cases and their
warnings, checkpoints both ways (and the successor's legacy flat keys),
LossWarmupWrapper around both, gradcheck in float64, and the ValueErrors.

Environment: PROXYLOSS_LIBRARY and PYTHONPATH (python/) when run from the
build tree (CTest sets both), or an installed proxyloss.
"""
import math
import random
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import proxyloss

imbalanced_losses = pytest.importorskip("imbalanced_losses")

QUEUE_FIELDS = ("_q_logits", "_q_targets", "_q_ptr", "_q_iid", "_q_weight")
BITWISE = ("t_alpha", "t_beta", "tau_eff")
INTERPOLATIONS = ("linear", "lower", "higher", "nearest", "midpoint")


# --- helpers ---------------------------------------------------------------------

def assert_close(got, want, dtype, what):
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(got, want, rtol=tol, atol=tol, equal_nan=True, msg=what)


def make_pair(**options):
    return (proxyloss.PAUCAtBudgetLoss(**options),
            imbalanced_losses.PAUCAtBudgetLoss(**options))


def random_options(rng):
    C = rng.choice([1, 2, 4])
    options = dict(
        num_classes=C,
        queue_size=rng.choice([0, 16, 64]),
        alpha=rng.choice([0.0, 0.0, 0.01, 0.05]),
        beta=rng.choice([0.1, 0.2, 0.3, 0.5]),
        surrogate=rng.choice(["trapezoid", "pairwise"]),
        n_knots=rng.randint(2, 8),
        tau_scale=rng.choice(["iqr", "band"]),
        pos_numerator=rng.choice(["pool", "live"]),
        budget_basis=rng.choice(["fpr", "population"]),
        temperature=rng.choice([0.05, 0.1, 0.5]),
        reduction=rng.choice(["mean", "sum", "none"]),
        quantile_interpolation=rng.choice(INTERPOLATIONS),
        ignore_index=rng.choice([-100, -100, -1, 7]),
        update_queue_in_eval=rng.random() < 0.2,
    )
    if rng.random() < 0.25:
        options["max_pool_size"] = rng.choice([48, 100, 160])
    return options


def random_batch(rng, N, C, dtype, ignore_index):
    """Scores with spread (positives shifted up), a few percent to 30 %
    positives per class, 10 % ignore_index rows; now and then rounded to a
    grid (ties)."""
    if C == 1:
        targets = (torch.rand(N) < rng.uniform(0.03, 0.3)).long()
    else:
        shares = [rng.uniform(0.03, 0.3) for _ in range(C - 1)]
        targets = torch.multinomial(torch.tensor([1 - sum(shares)] + shares), N,
                                    replacement=True)
    logits = torch.randn(N, C, dtype=dtype) * rng.choice([0.5, 1.0, 5.0])
    shift = rng.choice([0.0, 1.0, 2.0])
    if C == 1:
        logits[:, 0] += shift * targets.to(dtype)
    else:
        logits[torch.arange(N), targets] += shift
    if rng.random() < 0.2:
        logits = (logits * 4).round() / 4
    targets[torch.rand(N) < 0.1] = ignore_index
    return logits, targets


def random_iid(rng, N):
    """None, or a mask with ~70 % iid rows: bool, or another dtype (non-zero
    = iid)."""
    if rng.random() < 0.4:
        return None
    mask = torch.rand(N) < 0.7
    return rng.choice([mask, mask.float(), mask.to(torch.uint8), mask.long() * 3])


def random_weight(rng, N, dtype):
    """None, or weights in [0, 3) with some zeros (in the logits' dtype or
    float32)."""
    if rng.random() < 0.35:
        return None
    weight = torch.rand(N, dtype=rng.choice([dtype, torch.float32])) * 3
    weight[torch.rand(N) < 0.2] = 0
    return weight


def queue_buffers(loss):
    queue = loss._queue
    return {f: getattr(queue, f) for f in QUEUE_FIELDS if hasattr(queue, f)}


def assert_same_queues(ours, theirs, where):
    got, want = queue_buffers(ours), queue_buffers(theirs)
    assert list(got) == list(want), where
    for field in got:
        assert got[field].dtype == want[field].dtype, f"queue {field} dtype: {where}"
        assert torch.equal(got[field], want[field]), f"queue {field}: {where}"


def call(loss, logits, targets, iid, weight, per_class, diagnostics, seed):
    torch.manual_seed(seed)  # the same subsample draws for both
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warnings are tested below
        return loss(logits, targets, iid, per_class, diagnostics, sample_weight=weight)


def unpack(out, per_class, diagnostics):
    """(loss, per_class or None, valid or None, stats or None)."""
    if not per_class and not diagnostics:
        assert isinstance(out, torch.Tensor)
        return out, None, None, None
    assert isinstance(out, tuple)
    assert len(out) == 1 + 2 * per_class + diagnostics
    loss = out[0]
    pc, valid = (out[1], out[2]) if per_class else (None, None)
    stats = out[-1] if diagnostics else None
    if diagnostics:
        assert isinstance(stats, dict)
    return loss, pc, valid, stats


def describe(x):
    return [float(v).hex() for v in x.reshape(-1)]


def compare_step(got, want, dtype, where, valid=None):
    """got/want: unpack() results of ours and the successor's."""
    g_loss, g_pc, g_valid, g_stats = got
    w_loss, w_pc, w_valid, w_stats = want
    assert g_loss.shape == w_loss.shape and g_loss.dtype == w_loss.dtype, where
    assert_close(g_loss.detach(), w_loss.detach(), dtype, f"loss: {where}")
    if g_pc is not None:
        assert torch.equal(g_valid, w_valid), f"valid: {where}: {g_valid} vs {w_valid}"
        assert g_valid.dtype == torch.bool
        assert_close(g_pc.detach(), w_pc.detach(), dtype, f"per_class: {where}")
    if g_stats is None:
        return
    assert sorted(g_stats) == sorted(w_stats), where
    if valid is None:
        valid = g_valid if g_valid is not None else torch.isfinite(w_stats["t_alpha"])
    for key in BITWISE:
        g, w = g_stats[key], w_stats[key]
        assert g.dtype == w.dtype and g.shape == w.shape, f"{key}: {where}"
        assert not g.requires_grad, key
        assert torch.equal(g[valid], w[valid]), (
            f"{key} not bitwise: {where}: ours {describe(g)} vs successor {describe(w)} "
            f"(valid {valid.tolist()})")
        assert torch.isnan(g[~valid]).all() and torch.isnan(w[~valid]).all(), key
    for key in ("band_neg_count", "grad_pos_count"):
        assert g_stats[key].dtype == torch.long, key
        assert torch.equal(g_stats[key], w_stats[key]), (
            f"{key}: {where}: {g_stats[key].tolist()} vs {w_stats[key].tolist()}")
    assert_close(g_stats["pauc_var"], w_stats["pauc_var"], dtype, f"pauc_var: {where}")


def backward_both(got_loss, want_loss, rng):
    """A random combination of the loss's entries (NaN entries weigh 0)."""
    coef = torch.tensor([rng.uniform(0.5, 2.0) for _ in range(got_loss.numel())],
                        dtype=got_loss.dtype).reshape(got_loss.shape)
    for loss in (got_loss, want_loss):
        if loss.requires_grad:
            (loss.nan_to_num() * coef).sum().backward()


def grad_or_zeros(x):
    return x.grad if x.grad is not None else torch.zeros_like(x)


def run_sequence(ours, theirs, rng, dtype, steps, sizes, where_prefix):
    C = ours.num_classes
    for step in range(steps):
        training = rng.random() < 0.75
        ours.train(training)
        theirs.train(training)
        N = rng.randint(*sizes)
        logits, targets = random_batch(rng, N, C, dtype, ours.ignore_index)
        iid = random_iid(rng, N)
        weight = random_weight(rng, N, dtype)
        per_class, diagnostics = rng.random() < 0.6, rng.random() < 0.6
        seed = rng.randrange(2**31)
        where = (f"{where_prefix} step {step} N={N} train={training} "
                 f"iid={iid is not None} weight={weight is not None}")
        x = logits.clone().requires_grad_(True)
        y = logits.clone().requires_grad_(True)
        got = unpack(call(ours, x, targets, iid, weight, per_class, diagnostics, seed),
                     per_class, diagnostics)
        want = unpack(call(theirs, y, targets, iid, weight, per_class, diagnostics, seed),
                      per_class, diagnostics)
        compare_step(got, want, dtype, where)
        backward_both(got[0], want[0], rng)
        assert_close(grad_or_zeros(x), grad_or_zeros(y), dtype, f"gradient: {where}")
        assert_same_queues(ours, theirs, where)


# --- against the successor ---------------------------------------------------------

@pytest.mark.parametrize("seed", range(48))
def test_matches_the_successor_over_random_options_and_queue_sequences(seed):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    options = random_options(rng)
    ours, theirs = make_pair(**options)
    dtype = rng.choice([torch.float32, torch.float64])
    if dtype == torch.float64:
        # The successor's float32 queue would round float64 rows; with
        # .double() both keep them in float64.
        ours.double()
        theirs.double()
    run_sequence(ours, theirs, rng, dtype, steps=5, sizes=(64, 256),
                 where_prefix=f"seed {seed} {dtype} {options}")


@pytest.mark.parametrize("seed", range(6))
def test_float64_logits_through_a_float32_queue_match_the_successor(seed):
    # Both queues keep float32 rows unless the module is converted.
    rng = random.Random(100 + seed)
    torch.manual_seed(100 + seed)
    options = random_options(rng)
    options["queue_size"] = rng.choice([16, 64])
    ours, theirs = make_pair(**options)
    run_sequence(ours, theirs, rng, torch.float64, steps=4, sizes=(64, 160),
                 where_prefix=f"seed {seed} f64 via f32 queue {options}")
    assert ours._q_logits.dtype == torch.float32


@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("tau_scale", ["iqr", "band"])
@pytest.mark.parametrize("surrogate", ["trapezoid", "pairwise"])
def test_the_default_band_with_a_big_queue_matches_the_successor(C, tau_scale, surrogate):
    # alpha=0, beta=0.005: 'band' is degenerate until the reference holds
    # more than 200 negatives, then valid.
    rng = random.Random(C * 7 + len(tau_scale) + len(surrogate))
    torch.manual_seed(C)
    ours, theirs = make_pair(num_classes=C, tau_scale=tau_scale, surrogate=surrogate,
                             queue_size=1024)
    seen_valid = False
    for step in range(5):
        logits, targets = random_batch(rng, 256, C, torch.float32, -100)
        logits = logits + 0.0  # distinct scores: no rounding grid here
        x = logits.clone().requires_grad_(True)
        y = logits.clone().requires_grad_(True)
        got = unpack(call(ours, x, targets, None, None, True, True, step), True, True)
        want = unpack(call(theirs, y, targets, None, None, True, True, step), True, True)
        compare_step(got, want, torch.float32, f"default band C={C} step {step}")
        seen_valid |= bool(got[2].any())
        backward_both(got[0], want[0], rng)
        assert_close(grad_or_zeros(x), grad_or_zeros(y), torch.float32, f"grad step {step}")
        assert_same_queues(ours, theirs, f"default band step {step}")
    assert seen_valid


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("band", [(0.0, 0.1), (0.01, 0.3), (0.05, 0.2), (0.1, 0.7),
                                  (1 / 3, 0.9)])
def test_thresholds_are_bitwise_the_successors_at_index_tie_sizes(interpolation, dtype, band):
    # Non-dyadic levels over reference sizes where q * (n - 1) lands on or
    # next to an integer, with K = 7 interior knots (their linspace bits).
    alpha, beta = band
    for n_ref in (10, 21, 101, 500, 517, 533):
        ours, theirs = make_pair(num_classes=1, alpha=alpha, beta=beta, n_knots=7,
                                 queue_size=0, quantile_interpolation=interpolation,
                                 reduction="none")
        torch.manual_seed(n_ref)
        scores = torch.randn(n_ref + 5, 1, dtype=dtype)
        targets = torch.zeros(n_ref + 5, dtype=torch.long)
        targets[:5] = 1
        got = unpack(call(ours, scores, targets, None, None, True, True, 0), True, True)
        want = unpack(call(theirs, scores, targets, None, None, True, True, 0), True, True)
        compare_step(got, want, dtype, f"n_ref={n_ref} band={band} {interpolation}")


@pytest.mark.parametrize("seed", range(4))
def test_the_call_forms_and_the_four_return_forms(seed):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    ours, theirs = make_pair(num_classes=2, beta=0.3, queue_size=32)
    logits, targets = random_batch(rng, 96, 2, torch.float32, -100)
    # The seed's form (bool third argument) is the successor's return_per_class.
    got = ours(logits, targets, True)
    want = theirs(logits, targets, None, True)
    compare_step(unpack(got, True, False), unpack(want, True, False), torch.float32, "seed")
    with pytest.raises(TypeError, match="third argument is iid_mask"):
        ours(logits, targets, True, True)
    iid = torch.rand(96) < 0.8
    for per_class in (False, True):
        for diagnostics in (False, True):
            got = ours(logits, targets, iid, per_class, diagnostics)
            want = theirs(logits, targets, iid, per_class, diagnostics)
            compare_step(unpack(got, per_class, diagnostics),
                         unpack(want, per_class, diagnostics), torch.float32,
                         f"forms {per_class} {diagnostics}")
            got = ours(logits, targets, iid_mask=iid, return_per_class=per_class,
                       return_diagnostics=diagnostics)
            want = theirs(logits, targets, iid_mask=iid, return_per_class=per_class,
                          return_diagnostics=diagnostics)
            compare_step(unpack(got, per_class, diagnostics),
                         unpack(want, per_class, diagnostics), torch.float32,
                         f"keywords {per_class} {diagnostics}")
    assert_same_queues(ours, theirs, "")
    # [N, 1] targets, as the successor squeezes them.
    got = ours(logits, targets[:, None], iid, True, True)
    want = theirs(logits, targets[:, None], iid, True, True)
    compare_step(unpack(got, True, True), unpack(want, True, True), torch.float32, "[N,1]")


def test_diagnostics_are_detached_and_do_not_change_the_loss():
    torch.manual_seed(0)
    loss = proxyloss.PAUCAtBudgetLoss(3, beta=0.3, surrogate="pairwise", queue_size=0)
    logits = torch.randn(120, 3, dtype=torch.float64, requires_grad=True)
    targets = torch.arange(120) % 3
    plain = loss(logits, targets)
    value, stats = loss(logits, targets, return_diagnostics=True)
    assert torch.equal(plain, value)
    assert all(not t.requires_grad for t in stats.values())
    assert stats["grad_pos_count"].tolist() == [40, 40, 40]
    assert (stats["t_alpha"] >= stats["t_beta"]).all()


# --- degenerate, empty and bad inputs --------------------------------------------------

@pytest.mark.parametrize("surrogate", ["trapezoid", "pairwise"])
@pytest.mark.parametrize("budget_basis", ["fpr", "population"])
def test_constant_negatives_are_invalid_and_warn_once(surrogate, budget_basis):
    ours, theirs = make_pair(num_classes=2, beta=0.3, surrogate=surrogate,
                             budget_basis=budget_basis, queue_size=0, reduction="none")
    logits = torch.zeros(40, 2)
    targets = torch.tensor([0, 1] * 20)
    # Class 0: its negatives all score 0 (its positives are spread); class 1
    # is valid.
    logits[targets == 0, 0] = torch.linspace(1, 2, 20)
    logits[targets == 0, 1] = torch.linspace(-1, 1, 20)
    logits[targets == 1, 1] = torch.linspace(0, 0.5, 20)
    if budget_basis == "population":
        logits[:, 0] = 0.0  # every iid row of class 0 scores 0
    with pytest.warns(UserWarning, match="near zero for class") as record:
        got = ours(logits, targets, None, True, True)
    assert record[0].filename == __file__
    assert "at least" in str(record[0].message) or "alpha=0" in str(record[0].message)
    with pytest.warns(UserWarning, match="near-zero"):
        want = theirs(logits, targets, None, True, True)
    compare_step(unpack(got, True, True), unpack(want, True, True), torch.float32, "degen")
    assert got[2].tolist().count(False) == 1
    assert torch.isnan(got[0][~got[2]]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours(logits, targets)  # once per instance


def test_the_degenerate_warning_names_the_tail_when_alpha_is_positive():
    loss = proxyloss.PAUCAtBudgetLoss(1, alpha=0.05, beta=0.1, queue_size=0)
    targets = torch.tensor([1] + [0] * 9)
    logits = torch.zeros(10, 1)
    logits[0] = 1.0
    with pytest.warns(UserWarning, match=r"at least ~20 reference rows") as record:
        value = loss(logits, targets)
    assert "interquartile range" in str(record[0].message)
    assert "scale=0.00e+00" in str(record[0].message)
    assert float(value) == 0.0


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_an_empty_pool_matches_the_successor_and_is_not_queued(reduction):
    ours, theirs = make_pair(num_classes=3, beta=0.2, queue_size=16, reduction=reduction)
    logits = torch.randn(6, 3, requires_grad=True)
    targets = torch.full((6,), -100)
    got = unpack(ours(logits, targets, None, True, True), True, True)
    want = unpack(theirs(logits, targets, None, True, True), True, True)
    compare_step(got, want, torch.float32, "empty", valid=torch.zeros(3, dtype=torch.bool))
    assert not got[2].any()
    assert torch.equal(got[0], torch.zeros_like(got[0]))  # zeros, also under 'none'
    got[0].sum().backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    assert int(ours._q_ptr) == 0 and int(theirs._q_ptr) == 0
    assert_same_queues(ours, theirs, "")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("empty", [True, False])
def test_no_valid_class_gives_a_zero_loss_with_a_graph(reduction, empty):
    # As the successor (logits.sum() * 0): backward() runs and gives zeros.
    ours, theirs = make_pair(num_classes=3, beta=0.2, queue_size=0, reduction=reduction)
    logits = torch.randn(6, 3, requires_grad=True)
    targets = torch.full((6,), -100) if empty else torch.zeros(6, dtype=torch.long)
    got, want = ours(logits, targets), theirs(logits, targets)
    assert want.requires_grad
    assert got.requires_grad, f"no graph: ours {got} vs the successor's {want}"
    assert float(got) == 0.0
    got.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_classes_without_positives_or_iid_negatives_match_the_successor():
    ours, theirs = make_pair(num_classes=4, beta=0.3, queue_size=0, reduction="none",
                             pos_numerator="live")
    torch.manual_seed(3)
    logits = torch.randn(60, 4)
    targets = torch.tensor([0, 1, 2] * 20)  # class 3 has no positive
    iid = targets == 2  # class 2 has no iid negative
    for mask in (iid, torch.zeros(60, dtype=torch.bool)):  # then: no iid negative at all
        got = unpack(ours(logits, targets, mask, True, True), True, True)
        want = unpack(theirs(logits, targets, mask, True, True), True, True)
        compare_step(got, want, torch.float32, f"mask {mask.sum()}")
        assert not got[2][3]


def test_zero_positive_weight_mass_is_invalid_as_the_successor():
    ours, theirs = make_pair(num_classes=2, beta=0.3, queue_size=0, reduction="none")
    torch.manual_seed(4)
    logits = torch.randn(50, 2, dtype=torch.float64)
    targets = torch.arange(50) % 2
    weight = (targets == 0).double()  # class 1's positives weigh 0
    got = unpack(ours(logits, targets, None, True, True, sample_weight=weight), True, True)
    want = unpack(theirs(logits, targets, None, True, True, sample_weight=weight), True, True)
    compare_step(got, want, torch.float64, "zero mass")
    assert got[2].tolist() == [True, False]


def test_non_finite_logits_warn_once_and_are_not_queued():
    loss = proxyloss.PAUCAtBudgetLoss(2, beta=0.3, queue_size=32)
    logits = torch.randn(20, 2)
    logits[3, 1] = float("nan")
    targets = torch.arange(20) % 2
    with pytest.warns(UserWarning, match="non-finite logits") as record:
        value = loss(logits, targets)
    assert record[0].filename == __file__
    assert torch.isnan(value)
    assert int(loss._q_ptr) == 0 and (loss._q_targets == -100).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss(logits, targets)
    loss(torch.randn(20, 2), targets)
    assert int(loss._q_ptr) == 20


def test_binary_targets_outside_0_1_warn_once_and_count_as_positive():
    ours, theirs = make_pair(num_classes=1, beta=0.3, queue_size=0)
    torch.manual_seed(5)
    logits = torch.randn(40, 1)
    targets = torch.tensor([0, 1, 0, 2] * 10)
    with pytest.warns(UserWarning, match="expects targets in"):
        got = unpack(ours(logits, targets, None, True, True), True, True)
    with pytest.warns(UserWarning, match="expects targets in"):
        want = unpack(theirs(logits, targets, None, True, True), True, True)
    compare_step(got, want, torch.float32, "binary labels")
    assert got[3]["grad_pos_count"].tolist() == [20]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours(logits, targets)  # once per instance (the successor: every call)


def test_subsampling_warns_once():
    loss = proxyloss.PAUCAtBudgetLoss(2, beta=0.3, queue_size=0, max_pool_size=32)
    logits, targets = torch.randn(64, 2), torch.arange(64) % 2
    with pytest.warns(UserWarning, match="max_pool_size=32") as record:
        loss(logits, targets)
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss(logits, targets)


def test_multi_class_targets_out_of_range_are_a_value_error():
    # A documented divergence: the successor makes them negatives of every class.
    loss = proxyloss.PAUCAtBudgetLoss(3, beta=0.3, queue_size=8)
    with pytest.raises(ValueError, match="PAUCAtBudgetLoss: .*target"):
        loss(torch.randn(6, 3), torch.tensor([0, 1, 2, 3, 0, 1]))
    assert int(loss._q_ptr) == 0


BAD_WEIGHTS = {
    "negative": ([1.0, -1.0, 1.0, 1.0], torch.float32, "finite and >= 0"),
    "nan": ([1.0, math.nan, 1.0, 1.0], torch.float64, "finite and >= 0"),
    "inf": ([1.0, 1.0, math.inf, 1.0], torch.float32, "finite and >= 0"),
    "short": ([1.0, 1.0, 1.0], torch.float32, r"shape \[N\] with N = 4"),
    "integer": ([1, 1, 1, 1], torch.long, "floating point"),
}


@pytest.mark.parametrize("kind", sorted(BAD_WEIGHTS))
def test_bad_weights_are_value_errors_naming_them(kind):
    values, dtype, match = BAD_WEIGHTS[kind]
    loss = proxyloss.PAUCAtBudgetLoss(2, beta=0.3, queue_size=8)
    with pytest.raises(ValueError, match=f"PAUCAtBudgetLoss: .*sample_weight must .*{match}"):
        loss(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]),
             sample_weight=torch.tensor(values, dtype=dtype))
    if kind == "integer":
        return  # the successor casts an integer weight (as for the other ranking losses)
    with pytest.raises(ValueError, match="sample_weight"):  # the successor too
        imbalanced_losses.PAUCAtBudgetLoss(2, beta=0.3, queue_size=8)(
            torch.randn(4, 2), torch.tensor([0, 1, 0, 1]),
            sample_weight=torch.tensor(values, dtype=dtype))
    assert int(loss._q_ptr) == 0


def test_bad_iid_masks_and_inputs_are_errors_naming_them():
    loss = proxyloss.PAUCAtBudgetLoss(2, beta=0.3, queue_size=8)
    logits, targets = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"PAUCAtBudgetLoss: iid_mask must have shape \[N\]"):
        loss(logits, targets, torch.ones(5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"PAUCAtBudgetLoss: iid_mask must have shape \[N\]"):
        loss(logits, targets, torch.ones(6, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="PAUCAtBudgetLoss: iid_mask must be a tensor"):
        loss(logits, targets, [1, 0, 1, 1, 0, 1])
    with pytest.raises(ValueError, match="PAUCAtBudgetLoss: .*logits"):
        loss(torch.randn(6, 3), targets)
    with pytest.raises(ValueError, match="PAUCAtBudgetLoss: .*targets"):
        loss(logits, targets[:5])
    assert int(loss._q_ptr) == 0


BAD_OPTIONS = [
    dict(alpha=0.1, beta=0.1), dict(alpha=0.2, beta=0.1), dict(alpha=-0.1),
    dict(beta=1.5), dict(alpha=float("nan")), dict(beta=float("nan")),
    dict(n_knots=1), dict(n_knots=3.0), dict(n_knots=True),
    dict(surrogate="roc"), dict(tau_scale="std"), dict(pos_numerator="queue"),
    dict(budget_basis="tpr"), dict(quantile_interpolation="cubic"),
    dict(num_classes=0), dict(queue_size=-1), dict(temperature=0.0),
    dict(temperature=-1.0), dict(reduction="max"), dict(max_pool_size=0),
]
@pytest.mark.parametrize("bad", BAD_OPTIONS, ids=str)
def test_bad_options_are_value_errors_as_in_the_successor(bad):
    options = dict(num_classes=2, **bad) if "num_classes" not in bad else bad
    name = next(iter(bad))
    with pytest.raises(ValueError, match=f"PAUCAtBudgetLoss: .*{name}"):
        proxyloss.PAUCAtBudgetLoss(**options)
    with pytest.raises(ValueError):
        imbalanced_losses.PAUCAtBudgetLoss(**options)


@pytest.mark.parametrize("temperature", [float("nan"), float("inf")])
def test_a_non_finite_temperature_is_refused(temperature):
    # A documented divergence: the successor accepts both.
    with pytest.raises(ValueError, match="PAUCAtBudgetLoss: temperature must be finite"):
        proxyloss.PAUCAtBudgetLoss(2, temperature=temperature)
    imbalanced_losses.PAUCAtBudgetLoss(2, temperature=temperature)


def test_defaults_attributes_and_repr_equal_the_successors():
    ours, theirs = make_pair(num_classes=3)
    for attribute in ("alpha", "beta", "surrogate", "n_knots", "tau_scale", "pos_numerator",
                      "budget_basis", "queue_size", "temperature", "reduction",
                      "ignore_index", "update_queue_in_eval", "gather_distributed",
                      "quantile_interpolation", "max_pool_size", "num_classes"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert isinstance(ours.temperature, float)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours._q_logits is ours._queue._q_logits
    for field in QUEUE_FIELDS:
        g, w = getattr(ours._queue, field), getattr(theirs._queue, field)
        assert g.dtype == w.dtype and torch.equal(g, w), field
    assert "alpha=0.0" in repr(ours) and "surrogate='trapezoid'" in repr(ours)
    empty = proxyloss.PAUCAtBudgetLoss(2, queue_size=0)
    assert list(empty.state_dict()) == []
    assert not hasattr(empty, "_q_logits")


def test_all_zero_weights_warn_once_as_the_successor():
    ours, theirs = make_pair(num_classes=2, beta=0.3, queue_size=8)
    logits, targets = torch.randn(8, 2), torch.arange(8) % 2
    with pytest.warns(UserWarning, match="sample_weight is zero everywhere") as record:
        got = ours(logits, targets, None, True, sample_weight=torch.zeros(8))
    assert record[0].filename == __file__
    with pytest.warns(UserWarning, match="sample_weight is entirely zero"):
        want = theirs(logits, targets, None, True, sample_weight=torch.zeros(8))
    compare_step(unpack(got, True, False), unpack(want, True, False), torch.float32, "zero")
    assert not got[2].any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours(logits, targets, sample_weight=torch.zeros(8))


def test_gather_distributed_is_checked_and_refused_without_a_process_group():
    with pytest.raises(ValueError, match="PAUCAtBudgetLoss: gather_distributed"):
        proxyloss.PAUCAtBudgetLoss(2, gather_distributed="yes")
    loss = proxyloss.PAUCAtBudgetLoss(2, beta=0.3, gather_distributed=True)
    with pytest.raises(RuntimeError, match="process group"):
        loss(torch.randn(8, 2), torch.arange(8) % 2)
    proxyloss.PAUCAtBudgetLoss(2, beta=0.3, gather_distributed=False)(
        torch.randn(8, 2), torch.arange(8) % 2)


@pytest.mark.parametrize("surrogate", ["trapezoid", "pairwise"])
def test_the_functional_form_is_the_module_without_a_queue(surrogate):
    torch.manual_seed(13)
    options = dict(alpha=0.01, beta=0.3, surrogate=surrogate, n_knots=4, tau_scale="band",
                   budget_basis="population", temperature=0.2, reduction="none",
                   quantile_interpolation="midpoint")
    logits = torch.randn(80, 3, dtype=torch.float64)
    targets = torch.arange(80) % 3
    iid = torch.rand(80) < 0.8
    weight = torch.rand(80, dtype=torch.float64)
    module = proxyloss.PAUCAtBudgetLoss(3, queue_size=0, **options)
    functional = proxyloss.functional.pauc_at_budget_loss(logits, targets, **options,
                                                          iid_mask=iid, sample_weight=weight)
    assert torch.equal(functional, module(logits, targets, iid, sample_weight=weight))


# --- the queue: checkpoints, reset, weights --------------------------------------------

def train_a_few_steps(loss, rng, weighted=True, steps=3):
    C = loss.num_classes
    for _ in range(steps):
        logits, targets = random_batch(rng, 40, C, torch.float32, loss.ignore_index)
        weight = torch.rand(40) * 2 if weighted else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss(logits, targets, torch.rand(40) < 0.7, sample_weight=weight)


def test_checkpoints_load_both_ways(tmp_path):
    rng = random.Random(7)
    torch.manual_seed(7)
    options = dict(num_classes=2, beta=0.3, queue_size=64)
    ours, theirs = make_pair(**options)
    train_a_few_steps(ours, rng)
    path = tmp_path / "ours.pt"
    torch.save(ours.state_dict(), path)
    into_theirs = imbalanced_losses.PAUCAtBudgetLoss(**options)
    into_theirs.load_state_dict(torch.load(path))  # strict
    train_a_few_steps(theirs, rng)
    path = tmp_path / "theirs.pt"
    torch.save(theirs.state_dict(), path)
    into_ours = proxyloss.PAUCAtBudgetLoss(**options)
    into_ours.load_state_dict(torch.load(path))
    # Inside a model (a prefix): the successor's checkpoint into ours.
    nested = nn.ModuleDict({"loss": proxyloss.PAUCAtBudgetLoss(**options)})
    nested.load_state_dict(nn.ModuleDict({"loss": theirs}).state_dict())
    assert_same_queues(nested["loss"], theirs, "nested")
    assert nested["loss"]._queue_weighted
    for a, b in ((ours, into_theirs), (into_ours, theirs)):
        assert_same_queues(a, b, "checkpoint")
        # An unweighted call after the load reads the stored weights in both.
        logits, targets = random_batch(rng, 50, 2, torch.float32, -100)
        got = unpack(a(logits, targets, None, True, True), True, True)
        want = unpack(b(logits, targets, None, True, True), True, True)
        compare_step(got, want, torch.float32, "after load")
        assert_same_queues(a, b, "checkpoint")


@pytest.mark.parametrize("fields", [QUEUE_FIELDS, QUEUE_FIELDS[:3], QUEUE_FIELDS[:4]])
def test_legacy_flat_keys_load(fields):
    rng = random.Random(8)
    torch.manual_seed(8)
    source = imbalanced_losses.PAUCAtBudgetLoss(num_classes=2, beta=0.3, queue_size=32)
    train_a_few_steps(source, rng, weighted="_q_weight" in fields)
    flat = {f: getattr(source._queue, f).clone() for f in fields}
    ours = proxyloss.PAUCAtBudgetLoss(num_classes=2, beta=0.3, queue_size=32)
    ours.load_state_dict(flat)  # strict
    for f in QUEUE_FIELDS:
        want = getattr(source._queue, f) if f in fields else getattr(
            imbalanced_losses.PAUCAtBudgetLoss(2, queue_size=32)._queue, f)
        assert torch.equal(getattr(ours._queue, f), want), f
    assert ours._queue_weighted == ("_q_weight" in fields)


def test_reset_queue_matches_the_successor():
    rng = random.Random(9)
    ours, theirs = make_pair(num_classes=2, beta=0.3, queue_size=32)
    for loss in (ours, theirs):
        train_a_few_steps(loss, random.Random(9))
        loss.reset_queue()
    assert_same_queues(ours, theirs, "")
    logits, targets = random_batch(rng, 50, 2, torch.float32, -100)
    compare_step(unpack(ours(logits, targets, None, True), True, False),
                 unpack(theirs(logits, targets, None, True), True, False), torch.float32,
                 "after reset")
    assert not ours._queue_weighted


def test_the_queue_follows_the_logits_device_and_dtype_conversions():
    loss = proxyloss.PAUCAtBudgetLoss(2, queue_size=8).double()
    assert loss._q_logits.dtype == torch.float64 and loss._q_iid.dtype == torch.bool
    assert loss._q_weight.dtype == torch.float64 and loss._q_targets.dtype == torch.long


# --- LossWarmupWrapper --------------------------------------------------------------

class WeightedCrossEntropy(nn.Module):
    """A warmup loss that takes sample_weight (a module: the successor passes
    the weight only to a forward that declares it)."""

    def forward(self, logits, targets, sample_weight=None):
        keep = targets != -100
        losses = F.cross_entropy(logits[keep], targets[keep], reduction="none")
        if sample_weight is None:
            return losses.mean()
        weight = sample_weight[keep].to(losses.dtype)
        return (losses * weight).sum() / weight.sum().clamp_min(1e-12)


@pytest.mark.parametrize("kwargs_kind", ["plain", "weights_and_mask", "per_class",
                                         "diagnostics", "diagnostics_only"])
def test_the_warmup_wrapper_drives_it_as_the_successors(kwargs_kind):
    rng = random.Random(11)
    torch.manual_seed(11)
    options = dict(num_classes=3, beta=0.3, queue_size=64, surrogate="pairwise")
    schedule = dict(warmup_epochs=1, blend_epochs=2, temp_start=0.5, temp_end=0.05,
                    temp_decay_steps=7)
    ours = proxyloss.LossWarmupWrapper(WeightedCrossEntropy(),
                                       proxyloss.PAUCAtBudgetLoss(**options), **schedule)
    theirs = imbalanced_losses.LossWarmupWrapper(
        WeightedCrossEntropy(), imbalanced_losses.PAUCAtBudgetLoss(**options), **schedule)
    for step in range(15):
        epoch, first_of_epoch = divmod(step, 3)
        for wrapper in (ours, theirs):
            if first_of_epoch == 0:
                wrapper.on_train_epoch_start(epoch)
            wrapper.on_train_batch_start(step)
        assert ours.main_loss.temperature == theirs.main_loss.temperature
        logits, targets = random_batch(rng, 80, 3, torch.float32, -100)
        kwargs = {}
        if kwargs_kind == "weights_and_mask":
            kwargs = dict(sample_weight=torch.rand(80) * 2,
                          iid_mask=torch.rand(80) < 0.8)
        elif kwargs_kind == "per_class":
            kwargs = dict(return_per_class=True)
        elif kwargs_kind == "diagnostics":
            kwargs = dict(return_diagnostics=True, return_per_class=True)
        elif kwargs_kind == "diagnostics_only":
            kwargs = dict(return_diagnostics=True, sample_weight=torch.rand(80))
        x = logits.clone().requires_grad_(True)
        y = logits.clone().requires_grad_(True)
        got, want = ours(x, targets, **kwargs), theirs(y, targets, **kwargs)
        main_phase = not ours.in_warmup
        per_class = main_phase and bool(kwargs.get("return_per_class"))
        diagnostics = main_phase and bool(kwargs.get("return_diagnostics"))
        compare_step(unpack(got, per_class, diagnostics),
                     unpack(want, per_class, diagnostics), torch.float32,
                     f"epoch {epoch} step {step}")
        (got[0] if isinstance(got, tuple) else got).backward()
        (want[0] if isinstance(want, tuple) else want).backward()
        assert_close(x.grad, y.grad, torch.float32, f"grad epoch {epoch} step {step}")
        assert_same_queues(ours.main_loss, theirs.main_loss, f"step {step}")
    assert ours.main_loss.temperature < 0.5


# --- gradcheck -------------------------------------------------------------------

@pytest.mark.parametrize("surrogate", ["trapezoid", "pairwise"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("tau_scale", ["iqr", "band"])
def test_gradcheck_in_float64(surrogate, weighted, tau_scale):
    # The thresholds and tau are stop-gradients of the iid negatives' scores;
    # the rows checked are non-iid (never in the reference), so a finite
    # difference moves only their own terms: as positives, and (pairwise) as
    # band negatives.
    torch.manual_seed(12)
    C, fixed, free = 3, 90, 24
    loss = proxyloss.PAUCAtBudgetLoss(C, alpha=0.01, beta=0.5, surrogate=surrogate,
                                      tau_scale=tau_scale, queue_size=0, temperature=0.7,
                                      reduction="sum")
    base = torch.randn(fixed, C, dtype=torch.float64)
    targets = torch.cat([torch.arange(fixed) % C, torch.arange(free) % C])
    iid = torch.cat([torch.ones(fixed, dtype=torch.bool), torch.zeros(free, dtype=torch.bool)])
    weight = torch.rand(fixed + free, dtype=torch.float64) + 0.1 if weighted else None
    free_logits = (torch.randn(free, C, dtype=torch.float64) * 0.5).requires_grad_(True)

    def objective(z):
        return loss(torch.cat([base, z]), targets, iid, sample_weight=weight)

    _, per_class, valid = loss(torch.cat([base, free_logits]), targets, iid, True)
    assert valid.all()
    assert torch.autograd.gradcheck(objective, (free_logits,))
    objective(free_logits).backward()
    assert free_logits.grad.abs().sum() > 0
