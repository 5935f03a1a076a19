"""proxyloss.LossWarmupWrapper against the seed's (proxy-losses 0.1.3) and the
successor's (imbalanced-losses 0.6.0) LossWarmupWrapper, both installed as
oracles: the same hook sequence (on_train_epoch_start(epoch),
on_train_batch_start(global_step), forward, backward) drives ours and the
reference over many epochs/steps, each wrapper around its own package's
SmoothAPLoss / RecallAtQuantileLoss (with a queue) or a plain Python function,
and with nn.CrossEntropyLoss or a plain Python function as the warmup loss.
After every hook and every step: in_warmup, in_blend, ap_weight (seed) /
main_weight (successor), current_temperature, the loss, its gradient and
the main loss's queue buffers must agree.

The two deliberate differences from 0.1.3 (python/proxyloss/warmup.py's
docstring) are checked as differences: gather_distributed=None on the
wrapper leaves the main loss's own setting alone, and keyword arguments
(return_per_class=True) reach the main loss in the blend too. In both, ours
equals 0.6.0.

Environment: PROXYLOSS_LIBRARY and PYTHONPATH (python/) when run from the
build tree, or an installed proxyloss.
"""
import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import proxyloss

proxy_losses = pytest.importorskip("proxy_losses")
imbalanced_losses = pytest.importorskip("imbalanced_losses")

PACKAGES = {"ours": proxyloss, "seed": proxy_losses, "successor": imbalanced_losses}
TEMPS = dict(temp_start=0.5, temp_end=0.05, temp_decay_steps=7)


def assert_close(got, want, dtype, what):
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(got, want, rtol=tol, atol=tol, equal_nan=True, msg=what)


# --- the losses ---------------------------------------------------------------

def smoothed_cross_entropy(logits, targets):
    """A plain Python function as the warmup loss (no nn.Module, no forward)."""
    return F.cross_entropy(logits, targets, label_smoothing=0.1)


def squared_margin(logits, targets, **kwargs):
    """A plain Python function as the main loss: no temperature, no queue."""
    keep = targets != -100
    true = logits[keep].gather(1, targets[keep, None])
    return F.relu(1 + logits[keep] - true).pow(2).mean()


def binary_cross_entropy(logits, targets):
    """BCE-with-logits for the binary mode (num_classes=1): the adapter from
    the ranking losses' convention (logits [N, 1], integer targets in {0, 1},
    ignore_index rows) to F.binary_cross_entropy_with_logits (float targets
    of the logits' shape). The seed README names BCE as the warmup loss but
    shows only nn.CrossEntropyLoss, so a user needs an adapter like this."""
    keep = targets != -100
    return F.binary_cross_entropy_with_logits(logits[keep, 0], targets[keep].to(logits.dtype))


def make_main(package, kind, C, Q=16):
    if kind == "ap":
        return package.SmoothAPLoss(num_classes=C, queue_size=Q, temperature=0.1)
    if kind == "recall":
        return package.RecallAtQuantileLoss(num_classes=C, quantile=0.2, queue_size=Q,
                                            temperature=0.1)
    assert kind == "function"
    return squared_margin


def make_warmup(kind):
    return {"ce": nn.CrossEntropyLoss, "function": lambda: smoothed_cross_entropy,
            "bce": lambda: binary_cross_entropy}[kind]()


def make_wrapper(package, schedule, main_kind, warmup_kind, C, **extra):
    with warnings.catch_warnings():
        # A plain function as the main loss has no temperature: all warn.
        warnings.simplefilter("ignore", UserWarning)
        return package.LossWarmupWrapper(make_warmup(warmup_kind),
                                         make_main(package, main_kind, C),
                                         **TEMPS, **schedule, **extra)


# --- reading a wrapper's state --------------------------------------------------

def weight_of(name, wrapper):
    return wrapper.ap_weight if name == "seed" else wrapper.main_weight


def schedule_state(name, wrapper):
    return (wrapper.in_warmup, wrapper.in_blend, weight_of(name, wrapper),
            wrapper.current_temperature)


def queue_of(main_loss):
    """(logits, targets, ptr); the successor keeps them in main_loss._queue
    (and offers the seed's names as properties)."""
    if not hasattr(main_loss, "_q_logits"):
        return None
    return main_loss._q_logits, main_loss._q_targets, main_loss._q_ptr


def expected_weight(t, warmup, blend, final=1.0):
    """The schedule of warmup.py's docstring, written out again."""
    if t < warmup:
        return 0.0
    if t < warmup + blend:
        return final * (t - warmup + 1) / (blend + 1)
    return final


def check_same_state(wrappers, where):
    ours = wrappers["ours"]
    for name, reference in wrappers.items():
        if name == "ours":
            continue
        assert schedule_state("ours", ours) == schedule_state(name, reference), \
            f"{name}: {where}"
        if name == "successor":
            assert ours.get_extra_state() == reference.get_extra_state(), where
        else:
            assert ours._switch_step == reference._switch_step, where
        assert ours.ap_weight == ours.main_weight
        got, want = queue_of(ours.main_loss), queue_of(reference.main_loss)
        assert (got is None) == (want is None)
        if got is not None:
            for g, w, field in zip(got, want, ("logits", "targets", "ptr")):
                assert torch.equal(g, w), f"{name} queue {field}: {where}"


def loss_and_grad(wrapper, logits, targets, kwargs):
    x = logits.clone().requires_grad_(True)
    out = wrapper(x, targets, **kwargs)
    loss = out[0] if isinstance(out, tuple) else out
    loss.backward()
    grad = x.grad if x.grad is not None else torch.zeros_like(x)
    return out, grad


def drive(wrappers, *, epochs, steps, C, dtype, seed, epoch_hooks=True, batch_hooks=True,
          kwargs=None, before_forward=None):
    """Runs the hook sequence of a Lightning fit loop on every wrapper and
    compares after each hook and step; returns ours' schedule per step."""
    kwargs = kwargs or {}
    generator = torch.Generator().manual_seed(seed)
    labels = 2 if C == 1 else C
    trace = []
    global_step = 0
    for epoch in range(epochs):
        if epoch_hooks:
            for wrapper in wrappers.values():
                wrapper.on_train_epoch_start(epoch)
            check_same_state(wrappers, f"after on_train_epoch_start({epoch})")
        for _ in range(steps):
            where = f"epoch {epoch} global_step {global_step}"
            if batch_hooks:
                for wrapper in wrappers.values():
                    wrapper.on_train_batch_start(global_step)
                check_same_state(wrappers, f"after on_train_batch_start: {where}")
            if before_forward is not None:
                before_forward(wrappers, epoch, global_step)
            N = int(torch.randint(4, 13, (), generator=generator))
            logits = torch.randn(N, C, generator=generator, dtype=dtype)
            targets = torch.randint(0, labels, (N,), generator=generator)
            targets[torch.rand(N, generator=generator) < 0.15] = -100
            results = {name: loss_and_grad(wrapper, logits, targets, kwargs)
                       for name, wrapper in wrappers.items()}
            got, got_grad = results["ours"]
            for name, (want, want_grad) in results.items():
                if name == "ours":
                    continue
                assert type(got) is type(want), f"{name}: {where}"
                got_t = got if isinstance(got, tuple) else (got,)
                want_t = want if isinstance(want, tuple) else (want,)
                assert len(got_t) == len(want_t)
                for g, w in zip(got_t, want_t):
                    if g.dtype == torch.bool:
                        assert torch.equal(g, w), f"{name} valid: {where}"
                    else:
                        assert_close(g.detach(), w.detach(), dtype, f"{name} loss: {where}")
                assert_close(got_grad, want_grad, dtype, f"{name} gradient: {where}")
            check_same_state(wrappers, f"after forward: {where}")
            trace.append((epoch, global_step) + schedule_state("ours", wrappers["ours"]))
            global_step += 1
    return trace


# --- epoch mode: ours == 0.1.3 == 0.6.0 -------------------------------------------

EPOCH_SCHEDULES = [
    dict(warmup_epochs=2, blend_epochs=2),
    dict(warmup_epochs=1, blend_epochs=0, reset_queue_each_epoch=True),
    dict(warmup_epochs=0, blend_epochs=2, reset_queue_each_epoch=True),
    dict(warmup_epochs=3, blend_epochs=1),
    dict(warmup_epochs=0, blend_epochs=0),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("warmup_kind", ["ce", "function"])
@pytest.mark.parametrize("main_kind", ["ap", "recall", "function"])
@pytest.mark.parametrize("schedule", EPOCH_SCHEDULES,
                         ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_epoch_mode_matches_the_seed_and_the_successor(schedule, main_kind, warmup_kind,
                                                       dtype):
    C = 3
    wrappers = {name: make_wrapper(package, schedule, main_kind, warmup_kind, C).to(dtype)
                for name, package in PACKAGES.items()}
    check_same_state(wrappers, "after construction")
    trace = drive(wrappers, epochs=6, steps=3, C=C, dtype=dtype, seed=len(str(schedule)))
    W, B = schedule["warmup_epochs"], schedule["blend_epochs"]
    for epoch, step, in_warmup, in_blend, weight, temperature in trace:
        assert in_warmup == (epoch < W) and in_blend == (W <= epoch < W + B)
        assert weight == pytest.approx(expected_weight(epoch, W, B), rel=1e-15)
        if main_kind != "function":
            # Before the switch the main loss keeps its own temperature (0.1)
            # unless there is no warmup (temp_start from construction).
            switch = 0 if W == 0 else 3 * W
            progress = min(1.0, (step - switch) / TEMPS["temp_decay_steps"])
            want = 0.5 * (0.05 / 0.5) ** progress if step >= switch else 0.1
            assert temperature == pytest.approx(want, rel=1e-12)
    if main_kind != "function":  # the schedule reached temp_end within the run
        assert trace[-1][-1] == pytest.approx(0.05, rel=1e-12)


@pytest.mark.parametrize("main_kind", ["ap", "recall"])
@pytest.mark.parametrize("schedule", [dict(warmup_epochs=2, blend_epochs=2),
                                      dict(warmup_epochs=1, blend_epochs=1,
                                           reset_queue_each_epoch=True),
                                      dict(warmup_epochs=0, blend_epochs=3)],
                         ids=["w2b2", "w1b1-reset", "w0b3"])
def test_binary_mode_with_a_bce_warmup_through_an_adapter(schedule, main_kind):
    C = 1
    wrappers = {name: make_wrapper(package, schedule, main_kind, "bce", C).double()
                for name, package in PACKAGES.items()}
    trace = drive(wrappers, epochs=6, steps=3, C=C, dtype=torch.float64, seed=11)
    assert {row[2] for row in trace} == ({True, False} if schedule["warmup_epochs"] else {False})


def test_the_queue_is_reset_at_the_switch_and_each_main_phase_epoch():
    """The main loss is also used directly during warmup (say, for logging
    a ranking metric), so its queue holds warmup-era rows; the batch hook at
    the switch empties it, in all three; reset_queue_each_epoch empties it
    at every later epoch start."""
    C = 2
    schedule = dict(warmup_epochs=2, blend_epochs=1, reset_queue_each_epoch=True)
    wrappers = {name: make_wrapper(package, schedule, "ap", "ce", C).double()
                for name, package in PACKAGES.items()}
    seen = []

    def log_ranking_during_warmup(wrappers, epoch, step):
        if epoch < 2:
            logits = torch.randn(5, C, dtype=torch.float64)
            targets = torch.tensor([0, 1, 0, 1, 1])
            for wrapper in wrappers.values():
                wrapper.main_loss(logits, targets)
        ptr = int(wrappers["ours"].main_loss._q_ptr)
        filled = int((wrappers["ours"].main_loss._q_targets != -100).sum())
        seen.append((epoch, step, ptr, filled))

    torch.manual_seed(0)
    drive(wrappers, epochs=5, steps=3, C=C, dtype=torch.float64, seed=5,
          before_forward=log_ranking_during_warmup)
    # Step 6 (the first of epoch 2) is the switch: an empty queue before its
    # forward; epochs 3, 4 start with an empty queue too (the epoch hook).
    by_step = {step: (ptr, filled) for _, step, ptr, filled in seen}
    assert by_step[5][1] > 0  # warmup-era rows were there
    for first_step_of_epoch in (6, 9, 12):
        assert by_step[first_step_of_epoch] == (0, 0)
    assert by_step[7][1] > 0


def test_a_main_loss_without_reset_queue_and_temperature_warns_as_the_successor():
    for package in (proxyloss, imbalanced_losses):
        with pytest.warns(UserWarning) as record:
            package.LossWarmupWrapper(nn.CrossEntropyLoss(), squared_margin, warmup_epochs=1,
                                      reset_queue_each_epoch=True)
        messages = " ".join(str(w.message) for w in record)
        assert "temperature" in messages and "reset_queue" in messages, package


# --- step mode and final_main_weight: ours == 0.6.0 ----------------------------------

STEP_SCHEDULES = [
    dict(warmup_steps=4, blend_steps=3),
    dict(warmup_steps=0, blend_steps=5, final_main_weight=0.6),
    dict(warmup_steps=5, final_main_weight=0.8, reset_queue_each_epoch=True),
    dict(warmup_steps=7, blend_steps=2),
    dict(warmup_steps=3, blend_steps=0, final_main_weight=0.5),
    dict(warmup_epochs=1, blend_epochs=2, final_main_weight=0.5),  # epoch mode
    dict(warmup_epochs=2, final_main_weight=0.25, reset_queue_each_epoch=True),
]


# Step mode also without on_train_epoch_start (optional there); epoch mode needs it.
STEP_CASES = [(schedule, hooks) for schedule in STEP_SCHEDULES
              for hooks in ((True, False) if "warmup_steps" in schedule else (True,))]


@pytest.mark.parametrize("warmup_kind", ["ce", "function"])
@pytest.mark.parametrize("main_kind", ["ap", "recall", "function"])
@pytest.mark.parametrize("schedule,epoch_hooks", STEP_CASES,
                         ids=["-".join(f"{k}{v}" for k, v in s.items())
                              + ("" if hooks else "-no-epoch-hooks") for s, hooks in STEP_CASES])
def test_step_mode_and_final_main_weight_match_the_successor(schedule, epoch_hooks, main_kind,
                                                             warmup_kind):
    C = 3
    wrappers = {name: make_wrapper(PACKAGES[name], schedule, main_kind, warmup_kind, C).double()
                for name in ("ours", "successor")}
    trace = drive(wrappers, epochs=4, steps=4, C=C, dtype=torch.float64, seed=7,
                  epoch_hooks=epoch_hooks)
    f = schedule.get("final_main_weight", 1.0)
    if "warmup_steps" in schedule:
        W, B = schedule["warmup_steps"], schedule.get("blend_steps", 0)
        for epoch, step, in_warmup, in_blend, weight, _ in trace:
            assert in_warmup == (step < W) and in_blend == (W <= step < W + B)
            assert weight == pytest.approx(expected_weight(step, W, B, f), rel=1e-15)
    else:
        W, B = schedule["warmup_epochs"], schedule.get("blend_epochs", 0)
        for epoch, step, in_warmup, in_blend, weight, _ in trace:
            assert weight == pytest.approx(expected_weight(epoch, W, B, f), rel=1e-15)
    assert trace[-1][4] == f


def test_step_mode_hooks_called_out_of_order_and_repeated():
    """Lightning calls on_train_batch_start with the same global_step for
    gradient-accumulation micro-batches; epochs restart mid-schedule."""
    C = 2
    schedule = dict(warmup_steps=3, blend_steps=3, reset_queue_each_epoch=True)
    wrappers = {name: make_wrapper(PACKAGES[name], schedule, "ap", "ce", C).double()
                for name in ("ours", "successor")}
    torch.manual_seed(1)
    for epoch, steps in enumerate([[0, 0, 1, 1], [2, 2, 3, 3], [4, 4, 5], [6, 7, 7, 8]]):
        for wrapper in wrappers.values():
            wrapper.on_train_epoch_start(epoch)
        for step in steps:
            for wrapper in wrappers.values():
                wrapper.on_train_batch_start(step)
            check_same_state(wrappers, f"step {step}")
            logits, targets = torch.randn(6, C, dtype=torch.float64), torch.randint(0, C, (6,))
            got = loss_and_grad(wrappers["ours"], logits, targets, {})
            want = loss_and_grad(wrappers["successor"], logits, targets, {})
            assert_close(got[0], want[0], torch.float64, f"loss at step {step}")
            assert_close(got[1], want[1], torch.float64, f"gradient at step {step}")
            check_same_state(wrappers, f"after step {step}")


# --- keyword arguments: return_per_class ---------------------------------------------

@pytest.mark.parametrize("main_kind", ["ap", "recall"])
def test_return_per_class_equals_the_successor_and_differs_from_the_seed_in_the_blend(
        main_kind):
    C = 3
    schedule = dict(warmup_epochs=1, blend_epochs=2)
    build = {name: make_wrapper(package, schedule, main_kind, "ce", C).double()
             for name, package in PACKAGES.items()}
    # ours == 0.6.0 in every phase, tuples included.
    trace = drive({"ours": build["ours"], "successor": build["successor"]}, epochs=5, steps=3,
                  C=C, dtype=torch.float64, seed=2, kwargs=dict(return_per_class=True))
    assert {row[3] for row in trace} == {True, False}  # went through the blend

    # ours vs 0.1.3, which drops the kwargs in the blend (documented difference).
    ours, seed = make_wrapper(proxyloss, schedule, main_kind, "ce", C).double(), build["seed"]
    generator = torch.Generator().manual_seed(4)
    step = 0
    for epoch in range(5):
        ours.on_train_epoch_start(epoch)
        seed.on_train_epoch_start(epoch)
        for _ in range(3):
            ours.on_train_batch_start(step)
            seed.on_train_batch_start(step)
            logits = torch.randn(9, C, generator=generator, dtype=torch.float64)
            targets = torch.randint(0, C, (9,), generator=generator)
            got = ours(logits, targets, return_per_class=True)
            want = seed(logits, targets, return_per_class=True)
            if ours.in_warmup:  # both: the warmup loss's scalar
                assert torch.is_tensor(got) and torch.is_tensor(want)
                assert_close(got, want, torch.float64, f"warmup step {step}")
            elif ours.in_blend:  # ours: (blend, per_class, valid); 0.1.3: the blend
                assert isinstance(got, tuple) and len(got) == 3 and torch.is_tensor(want)
                assert_close(got[0], want, torch.float64, f"blend step {step}")
                assert got[1].shape == (C,) and got[2].dtype == torch.bool
            else:  # after the blend: both main_loss's tuple
                assert isinstance(got, tuple) and isinstance(want, tuple)
                for g, w in zip(got, want):
                    assert_close(g, w, torch.float64, f"main step {step}")
            step += 1


def test_a_tuple_from_the_warmup_loss_is_blended_on_its_first_element():
    def warmup_with_extras(logits, targets):
        return F.cross_entropy(logits, targets), "extra"

    wrappers = {}
    for name in ("ours", "successor"):
        package = PACKAGES[name]
        wrappers[name] = package.LossWarmupWrapper(
            warmup_with_extras, package.SmoothAPLoss(num_classes=2, queue_size=8),
            warmup_epochs=0, blend_epochs=2, **TEMPS).double()
    drive(wrappers, epochs=3, steps=2, C=2, dtype=torch.float64, seed=3)


class WeightedCrossEntropy(nn.Module):
    def forward(self, logits, targets, sample_weight=None):
        losses = F.cross_entropy(logits, targets, reduction="none")
        if sample_weight is not None:
            losses = losses * sample_weight
        return losses.mean()


def weighted_margin(logits, targets, sample_weight=None):
    losses = F.relu(1 + logits - logits.gather(1, targets[:, None])).sum(1)
    return (losses * sample_weight).mean() if sample_weight is not None else losses.mean()


def test_sample_weight_reaches_a_warmup_module_that_declares_it():
    wrappers = {}
    for name in ("ours", "successor"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            wrappers[name] = PACKAGES[name].LossWarmupWrapper(
                WeightedCrossEntropy(), weighted_margin, warmup_epochs=1, blend_epochs=1)
    torch.manual_seed(8)
    for epoch in range(3):
        for wrapper in wrappers.values():
            wrapper.on_train_epoch_start(epoch)
            wrapper.on_train_batch_start(epoch)
        logits, targets = torch.randn(7, 3, dtype=torch.float64), torch.randint(0, 3, (7,))
        weight = torch.rand(7, dtype=torch.float64)
        got = loss_and_grad(wrappers["ours"], logits, targets, dict(sample_weight=weight))
        want = loss_and_grad(wrappers["successor"], logits, targets, dict(sample_weight=weight))
        assert_close(got[0], want[0], torch.float64, f"epoch {epoch}")
        assert_close(got[1], want[1], torch.float64, f"epoch {epoch}")
        unweighted = wrappers["ours"](logits, targets)
        assert not torch.allclose(got[0], unweighted)  # the weight was used


# --- gather_distributed: the other documented difference ------------------------------

@pytest.mark.parametrize("on_main,on_wrapper", [(False, None), (None, None), (False, True),
                                                (None, False), (True, False)])
def test_gather_distributed_is_written_to_the_main_loss_only_when_given(on_main, on_wrapper):
    def main_of(package):
        main = package.SmoothAPLoss(num_classes=2, queue_size=4, gather_distributed=on_main)
        package.LossWarmupWrapper(nn.CrossEntropyLoss(), main, warmup_epochs=1, **TEMPS,
                                  gather_distributed=on_wrapper)
        return main.gather_distributed

    want = on_main if on_wrapper is None else on_wrapper
    assert main_of(proxyloss) is want
    assert main_of(imbalanced_losses) is want
    assert main_of(proxy_losses) is on_wrapper  # 0.1.3 always overwrote it


# --- the missing-batch-hook warning ---------------------------------------------------

def count_hook_warnings(record):
    return sum("on_train_batch_start" in str(w.message) for w in record)


@pytest.mark.parametrize("schedule", [dict(warmup_epochs=1), dict(warmup_epochs=1, blend_epochs=2),
                                      dict(warmup_epochs=0), dict(warmup_steps=0)],
                         ids=["w1", "w1b2", "w0", "steps0"])
def test_a_main_phase_without_batch_hooks_warns_once_as_the_successor(schedule):
    wrappers = {name: make_wrapper(PACKAGES[name], schedule, "ap", "ce", 2).double()
                for name in ("ours", "successor")}
    counts = {}
    for name, wrapper in wrappers.items():
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            generator = torch.Generator().manual_seed(0)
            per_epoch = []
            for epoch in range(4):
                wrapper.on_train_epoch_start(epoch)
                before = count_hook_warnings(record)
                for _ in range(3):
                    logits = torch.randn(6, 2, generator=generator, dtype=torch.float64)
                    wrapper(logits, torch.tensor([0, 1, 0, 1, 1, 0]))
                per_epoch.append(count_hook_warnings(record) - before)
            counts[name] = per_epoch
        # Never decayed: temp_start when there is no warmup (set at
        # construction), else the main loss's own 0.1 (no hook latched the
        # switch), in both.
        no_warmup = not schedule.get("warmup_epochs", schedule.get("warmup_steps"))
        assert wrapper.current_temperature == (TEMPS["temp_start"] if no_warmup else 0.1)
    first_main_epoch = schedule.get("warmup_epochs", 0)
    want = [0] * 4
    want[first_main_epoch] = 1
    assert counts["ours"] == want and counts["successor"] == want
    check_same_state(wrappers, "after four epochs without batch hooks")


def test_no_batch_hook_warning_when_the_hook_runs_or_the_main_loss_has_no_temperature():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        hooked = make_wrapper(proxyloss, dict(warmup_epochs=0), "ap", "ce", 2)
        hooked.on_train_epoch_start(0)
        hooked.on_train_batch_start(0)
        hooked(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))
        plain = make_wrapper(proxyloss, dict(warmup_epochs=0), "function", "ce", 2)
        plain(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]))
    assert count_hook_warnings(record) == 0


def test_the_hook_warning_is_per_instance_and_survives_deepcopy_state():
    wrapper = make_wrapper(proxyloss, dict(warmup_epochs=0), "ap", "ce", 2)
    logits, targets = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    with pytest.warns(UserWarning, match="on_train_batch_start"):
        wrapper(logits, targets)
    other = make_wrapper(proxyloss, dict(warmup_epochs=0), "ap", "ce", 2)
    with pytest.warns(UserWarning, match="on_train_batch_start"):
        other(logits, targets)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        wrapper(logits, targets)
        copy.deepcopy(wrapper)(logits, targets)
    assert count_hook_warnings(record) == 0


# --- constructor errors -------------------------------------------------------------

SUCCESSOR_ERRORS = [
    dict(warmup_epochs=2, warmup_steps=3),
    dict(warmup_steps=1, blend_epochs=1, blend_steps=2),
    dict(blend_steps=2),
    dict(warmup_epochs=1, blend_steps=0),
    dict(warmup_epochs=-1),
    dict(warmup_steps=-1),
    dict(blend_epochs=-1),
    dict(warmup_steps=1, blend_steps=-1),
    dict(final_main_weight=0.0),
    dict(final_main_weight=1.5),
    dict(final_main_weight=-0.25),
    dict(temp_start=0.0),
    dict(temp_end=-0.01),
    dict(temp_decay_steps=0),
    dict(temp_decay_steps=-3),
]


@pytest.mark.parametrize("kwargs", SUCCESSOR_ERRORS,
                         ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_constructor_value_errors_match_the_successor(kwargs):
    for package in (proxyloss, imbalanced_losses):
        with pytest.raises(ValueError):
            package.LossWarmupWrapper(nn.CrossEntropyLoss(),
                                      package.SmoothAPLoss(num_classes=2), **kwargs)


@pytest.mark.parametrize("kwargs", [dict(warmup_epochs=-1), dict(blend_epochs=-2),
                                    dict(temp_start=-1.0), dict(temp_end=0.0),
                                    dict(temp_decay_steps=0)],
                         ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_constructor_value_errors_match_the_seed(kwargs):
    arguments = dict(warmup_epochs=1, **TEMPS)
    arguments.update(kwargs)
    for package in (proxyloss, proxy_losses):
        with pytest.raises(ValueError):
            package.LossWarmupWrapper(nn.CrossEntropyLoss(),
                                      package.SmoothAPLoss(num_classes=2), **arguments)


@pytest.mark.parametrize("kwargs", [dict(), dict(warmup_steps=0),
                                    dict(warmup_steps=0, blend_steps=0),
                                    dict(warmup_epochs=0, warmup_steps=4),
                                    dict(final_main_weight=1.0), dict(final_main_weight=1e-6)],
                         ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()) or "defaults")
def test_boundary_arguments_are_accepted_as_by_the_successor(kwargs):
    temperatures = []
    for package in (proxyloss, imbalanced_losses):
        wrapper = package.LossWarmupWrapper(nn.CrossEntropyLoss(),
                                            package.SmoothAPLoss(num_classes=2), **kwargs)
        temperatures.append(wrapper.current_temperature)
    assert temperatures[0] == temperatures[1]


def test_the_defaults_equal_the_successor():
    ours = proxyloss.LossWarmupWrapper(nn.CrossEntropyLoss(), proxyloss.SmoothAPLoss(2))
    want = imbalanced_losses.LossWarmupWrapper(nn.CrossEntropyLoss(),
                                               imbalanced_losses.SmoothAPLoss(2))
    for attribute in ("warmup_epochs", "blend_epochs", "warmup_steps", "blend_steps",
                      "temp_start", "temp_end", "temp_decay_steps", "final_main_weight",
                      "reset_queue_each_epoch", "in_warmup", "in_blend", "main_weight",
                      "current_temperature"):
        assert getattr(ours, attribute) == getattr(want, attribute), attribute


def test_sample_weight_reaches_a_plain_function_warmup_loss_that_declares_it():
    """Ours inspects any callable's signature; 0.6.0 inspects only a
    ``forward`` (so a plain function never gets sample_weight there): ours
    follows its docstring ("the warmup loss gets only sample_weight, when it
    takes it"), for a function as for a module."""
    received = []

    def weighted_warmup(logits, targets, sample_weight=None):
        received.append(sample_weight)
        return F.cross_entropy(logits, targets)

    def unweighted_warmup(logits, targets):
        received.append("none")
        return F.cross_entropy(logits, targets)

    logits, targets = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    weight = torch.rand(5)
    for warmup in (weighted_warmup, unweighted_warmup):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            wrapper = proxyloss.LossWarmupWrapper(warmup, weighted_margin, warmup_epochs=1)
        wrapper.on_train_epoch_start(0)
        wrapper(logits, targets, sample_weight=weight)
    assert received[0] is weight and received[1] == "none"
