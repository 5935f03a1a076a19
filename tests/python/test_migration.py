"""Checkpoints of the seed (proxy-losses 0.1.3) and of its successor
(imbalanced-losses 0.6.0) load into proxyloss, and training continues as it
would have in the package that wrote them.

- 0.1.3's SmoothAPLoss / RecallAtQuantileLoss keep the queue in the buffers
  ``_q_logits``, ``_q_targets``, ``_q_ptr`` (ours have the same names); its
  LossWarmupWrapper stores nothing but ``main_loss._q_*`` (no schedule).
- 0.6.0 keeps the queue in a submodule: ``_queue._q_logits / _q_targets /
  _q_ptr / _q_iid / _q_weight``; its wrapper adds ``_extra_state`` (epoch,
  global_step, switch_step, batch_hook_seen, temperature).

Each checkpoint is loaded strictly (``load_state_dict`` with strict=True), as
it is and through ``torch.save`` to a file under tmp_path and ``torch.load``;
then the next steps' losses, gradients and queue buffers must equal those of
the reference continuing from the same state (a 0.6.0 queue holding
per-sample weights included: ours keeps them as ``_q_weight``). Ours -> ours round trips through deepcopy, pickle and a
file.

Environment: PROXYLOSS_LIBRARY and PYTHONPATH (python/) when run from the
build tree, or an installed proxyloss.
"""
import copy
import pickle

import pytest
import torch
from torch import nn

import proxyloss

proxy_losses = pytest.importorskip("proxy_losses")
imbalanced_losses = pytest.importorskip("imbalanced_losses")

C = 3
TEMPS = dict(temp_start=0.5, temp_end=0.05, temp_decay_steps=6)
SEED_KEYS = {"_q_logits", "_q_targets", "_q_ptr"}
OUR_KEYS = SEED_KEYS | {"_q_weight"}
SUCCESSOR_KEYS = {"_queue._q_logits", "_queue._q_targets", "_queue._q_ptr", "_queue._q_iid",
                  "_queue._q_weight"}


def assert_close(got, want, dtype, what):
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(got, want, rtol=tol, atol=tol, equal_nan=True, msg=what)


def make_loss(package, kind, queue_size):
    if kind == "ap":
        return package.SmoothAPLoss(num_classes=C, queue_size=queue_size, temperature=0.1)
    return package.RecallAtQuantileLoss(num_classes=C, quantile=0.25, queue_size=queue_size,
                                        temperature=0.1, quantile_interpolation="linear")


def batches(count, seed, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        N = int(torch.randint(5, 12, (), generator=generator))
        targets = torch.randint(0, C, (N,), generator=generator)
        targets[torch.rand(N, generator=generator) < 0.1] = -100
        out.append((torch.randn(N, C, generator=generator, dtype=dtype), targets))
    return out


def queue_of(loss, with_weights):
    """The queue buffers; with_weights: also the per-row weights, which
    0.1.3 does not have."""
    if not hasattr(loss, "_q_logits"):  # queue_size=0 in 0.6.0: _queue has no buffers
        return ()
    buffers = (loss._q_logits, loss._q_targets, loss._q_ptr)
    if with_weights:
        queue = getattr(loss, "_queue", loss)
        buffers += (queue._q_weight,)
    return buffers


def step(module, logits, targets, **kwargs):
    x = logits.clone().requires_grad_(True)
    out = module(x, targets, **kwargs)
    loss = out[0] if isinstance(out, tuple) else out
    loss.backward()
    return out, (x.grad if x.grad is not None else torch.zeros_like(x))


def compare_step(ours, reference, logits, targets, where, **kwargs):
    got, got_grad = step(ours, logits, targets, **kwargs)
    want, want_grad = step(reference, logits, targets, **kwargs)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want, strict=True):
        if g.dtype == torch.bool:
            assert torch.equal(g, w), where
        else:
            assert_close(g.detach(), w.detach(), logits.dtype, f"loss: {where}")
    assert_close(got_grad, want_grad, logits.dtype, f"gradient: {where}")
    with_weights = hasattr(reference, "_queue")  # the successor
    for g, w in zip(queue_of(ours, with_weights), queue_of(reference, with_weights),
                    strict=True):
        assert torch.equal(g, w), f"queue: {where}"


def via(state, how, tmp_path):
    """The state_dict as it is, or written with torch.save and read back."""
    if how == "state_dict":
        return state
    path = tmp_path / "checkpoint.pt"
    torch.save(state, path)
    return torch.load(path)


def continue_ranking(ours, reference, seed, weighted=False):
    """Four training steps, one eval step, one more training step; weighted:
    each with a sample_weight (some 0) and an iid_mask (successor call form)."""
    generator = torch.Generator().manual_seed(seed + 1000)
    for index, (logits, targets) in enumerate(batches(6, seed)):
        training = index != 4
        ours.train(training)
        reference.train(training)
        kwargs = {"return_per_class": True}
        if weighted:
            N = len(targets)
            weight = torch.rand(N, generator=generator) * 3
            weight[torch.rand(N, generator=generator) < 0.2] = 0
            kwargs.update(sample_weight=weight,
                          iid_mask=torch.rand(N, generator=generator) < 0.7)
        compare_step(ours, reference, logits, targets, f"step {index} after loading",
                     **kwargs)


# --- the ranking losses -------------------------------------------------------------

@pytest.mark.parametrize("how", ["state_dict", "file"])
@pytest.mark.parametrize("queue_size", [0, 8, 40])
@pytest.mark.parametrize("kind", ["ap", "recall"])
def test_a_seed_ranking_loss_checkpoint_loads_and_training_continues(kind, queue_size, how,
                                                                     tmp_path):
    seed_loss = make_loss(proxy_losses, kind, queue_size)
    for logits, targets in batches(3, seed=1):
        seed_loss(logits, targets)
    state = seed_loss.state_dict()
    assert set(state) == (SEED_KEYS if queue_size else set())
    ours = make_loss(proxyloss, kind, queue_size)
    ours.load_state_dict(via(state, how, tmp_path))  # strict
    for key, value in seed_loss.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    continue_ranking(ours, seed_loss, seed=2)


@pytest.mark.parametrize("how", ["state_dict", "file"])
@pytest.mark.parametrize("queue_size", [0, 8, 40])
@pytest.mark.parametrize("kind", ["ap", "recall"])
def test_a_successor_ranking_loss_checkpoint_loads_and_training_continues(kind, queue_size, how,
                                                                          tmp_path):
    successor = make_loss(imbalanced_losses, kind, queue_size)
    for logits, targets in batches(3, seed=3):
        successor(logits, targets)
    state = successor.state_dict()
    assert set(state) == (SUCCESSOR_KEYS if queue_size else set())
    ours = make_loss(proxyloss, kind, queue_size)
    ours.load_state_dict(via(state, how, tmp_path))  # strict
    assert set(ours.state_dict()) == (OUR_KEYS if queue_size else set())
    for got, want in zip(queue_of(ours, True), queue_of(successor, True), strict=True):
        assert torch.equal(got, want)
    continue_ranking(ours, successor, seed=4)


def test_a_successor_checkpoint_loads_into_a_float64_loss():
    successor = make_loss(imbalanced_losses, "ap", 16)
    for logits, targets in batches(2, seed=5):
        successor(logits, targets)
    ours = make_loss(proxyloss, "ap", 16).double()
    ours.load_state_dict(successor.state_dict())
    assert ours._q_logits.dtype == torch.float64
    assert torch.equal(ours._q_logits, successor._q_logits.double())
    successor.double()
    for index, (logits, targets) in enumerate(batches(3, seed=6, dtype=torch.float64)):
        compare_step(ours, successor, logits, targets, f"float64 step {index}")


def test_a_pre_0_6_successor_checkpoint_without_iid_and_weight_loads():
    """0.3.2 - 0.3.x stored only _queue._q_logits/_q_targets/_q_ptr, 0.4 -
    0.5 added _q_iid; both load (strict)."""
    successor = make_loss(imbalanced_losses, "recall", 12)
    for logits, targets in batches(2, seed=7):
        successor(logits, targets)
    state = successor.state_dict()
    for drop in (("_queue._q_weight",), ("_queue._q_weight", "_queue._q_iid")):
        older = {k: v for k, v in state.items() if k not in drop}
        ours = make_loss(proxyloss, "recall", 12)
        ours.load_state_dict(older)
        assert torch.equal(ours._q_logits, successor._q_logits)


@pytest.mark.parametrize("kind", ["ap", "recall"])
@pytest.mark.parametrize("then", ["weighted", "unweighted"])
def test_a_successor_queue_with_sample_weights_loads_and_training_continues(kind, then):
    """The queued rows keep their weights: the next steps weigh them as the
    successor does, with or without weights of their own."""
    successor = make_loss(imbalanced_losses, kind, 16)
    logits, targets = batches(1, seed=8)[0]
    weight = torch.ones(len(targets))
    weight[0] = 2.5
    weight[1] = 0.0
    successor(logits, targets, sample_weight=weight)
    state = successor.state_dict()
    assert bool((state["_queue._q_weight"] != 1).any())
    ours = make_loss(proxyloss, kind, 16)
    ours.load_state_dict(state)
    assert torch.equal(ours._q_weight, state["_queue._q_weight"])
    continue_ranking(ours, successor, seed=13, weighted=then == "weighted")


def test_a_successor_wrapper_checkpoint_with_sample_weights_loads():
    successor = make_loss(imbalanced_losses, "ap", 16)
    logits, targets = batches(1, seed=8)[0]
    successor(logits, targets, sample_weight=torch.rand(len(targets)))
    state = {"main_loss." + key: value for key, value in successor.state_dict().items()}
    ours = proxyloss.LossWarmupWrapper(nn.CrossEntropyLoss(), make_loss(proxyloss, "ap", 16),
                                       warmup_epochs=1)
    ours.load_state_dict(state, strict=False)  # the successor's wrapper adds _extra_state
    assert torch.equal(ours.main_loss._q_weight, state["main_loss._queue._q_weight"])


def test_a_successor_queue_with_unit_sample_weights_loads():
    """An explicit all-ones sample_weight leaves every stored weight at 1."""
    successor = make_loss(imbalanced_losses, "ap", 16)
    for logits, targets in batches(3, seed=9):
        successor(logits, targets, sample_weight=torch.ones(len(targets)))
    ours = make_loss(proxyloss, "ap", 16)
    ours.load_state_dict(successor.state_dict())
    continue_ranking(ours, successor, seed=10)


def test_a_successor_queue_whose_iid_flags_are_not_all_true_loads():
    """_q_iid only matters to PAUCAtBudgetLoss; these losses never read it."""
    successor = make_loss(imbalanced_losses, "ap", 16)
    logits, targets = batches(1, seed=11)[0]
    successor(logits, targets, iid_mask=torch.arange(len(targets)) % 2 == 0)
    assert not bool(successor.state_dict()["_queue._q_iid"].all())
    ours = make_loss(proxyloss, "ap", 16)
    ours.load_state_dict(successor.state_dict())
    continue_ranking(ours, successor, seed=12)


def test_a_mismatched_checkpoint_still_fails_strict_loading():
    successor = make_loss(imbalanced_losses, "ap", 16)
    state = successor.state_dict()
    state["_queue._q_extra"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="_q_extra"):
        make_loss(proxyloss, "ap", 16).load_state_dict(state)
    with pytest.raises(RuntimeError, match="size mismatch"):
        make_loss(proxyloss, "ap", 8).load_state_dict(successor.state_dict())


# --- the warmup wrapper ---------------------------------------------------------------

def make_wrapper(package, kind, queue_size=16, **schedule):
    return package.LossWarmupWrapper(nn.CrossEntropyLoss(), make_loss(package, kind, queue_size),
                                     **TEMPS, **schedule)


def run_epochs(wrappers, epochs, steps, start_step, seed, epoch_hooks=True):
    """The Lightning hook sequence over `epochs`, comparing every step;
    returns the next global step."""
    data = iter(batches(len(epochs) * steps, seed))
    global_step = start_step
    for epoch in epochs:
        if epoch_hooks:
            for wrapper in wrappers:
                wrapper.on_train_epoch_start(epoch)
        for _ in range(steps):
            for wrapper in wrappers:
                wrapper.on_train_batch_start(global_step)
            logits, targets = next(data)
            if len(wrappers) > 1:
                ours, reference = wrappers
                assert ours.in_warmup == reference.in_warmup
                assert ours.current_temperature == reference.current_temperature
                compare_step(ours, reference, logits, targets,
                             f"epoch {epoch} global_step {global_step}")
            else:
                step(wrappers[0], logits, targets)
            global_step += 1
    return global_step


@pytest.mark.parametrize("how", ["state_dict", "file"])
@pytest.mark.parametrize("saved_after_epochs", [1, 2, 4])
@pytest.mark.parametrize("kind", ["ap", "recall"])
def test_a_seed_wrapper_checkpoint_loads_and_training_resumes_as_the_seed(kind,
                                                                          saved_after_epochs,
                                                                          how, tmp_path):
    """0.1.3 saves no schedule, so a run resumed from its checkpoint restarts
    the schedule from the hooks (on_train_epoch_start(epoch) latches the
    switch at the next batch, which resets the queue and the temperature):
    ours, loaded from it, must resume exactly as 0.1.3 does."""
    schedule = dict(warmup_epochs=2, blend_epochs=2)
    original = make_wrapper(proxy_losses, kind, **schedule)
    steps = 3
    next_step = run_epochs([original], range(saved_after_epochs), steps, 0, seed=13)
    state = original.state_dict()
    assert set(state) == {"main_loss." + key for key in SEED_KEYS}
    ours = make_wrapper(proxyloss, kind, **schedule)
    fresh = ours.get_extra_state()
    ours.load_state_dict(via(state, how, tmp_path))  # strict, no _extra_state
    assert ours.get_extra_state() == fresh  # the seed has no schedule to restore
    for key, value in state.items():
        assert torch.equal(ours.state_dict()[key], value), key
    resumed_seed = make_wrapper(proxy_losses, kind, **schedule)
    resumed_seed.load_state_dict(state)
    run_epochs([ours, resumed_seed], range(saved_after_epochs, 7), steps, next_step, seed=14)
    assert ours.main_weight == resumed_seed.ap_weight == 1.0


STATE_FIELDS = {"epoch", "global_step", "switch_step", "batch_hook_seen", "temperature"}


@pytest.mark.parametrize("how", ["state_dict", "file"])
@pytest.mark.parametrize("saved_after_epochs", [1, 2, 3, 5])
@pytest.mark.parametrize("schedule", [dict(warmup_epochs=2, blend_epochs=2),
                                      dict(warmup_epochs=1, blend_epochs=1,
                                           final_main_weight=0.7, reset_queue_each_epoch=True),
                                      dict(warmup_steps=5, blend_steps=4),
                                      dict(warmup_steps=7, final_main_weight=0.5)],
                         ids=["epochs", "epochs-fmw-reset", "steps", "steps-fmw"])
@pytest.mark.parametrize("kind", ["ap", "recall"])
def test_a_successor_wrapper_checkpoint_resumes_its_schedule(kind, schedule, saved_after_epochs,
                                                             how, tmp_path):
    """0.6.0 stores the schedule in _extra_state: ours resumes it where it
    was (no new switch, no queue reset), as the uninterrupted 0.6.0 run."""
    original = make_wrapper(imbalanced_losses, kind, **schedule)
    steps = 3
    next_step = run_epochs([original], range(saved_after_epochs), steps, 0, seed=15)
    state = original.state_dict()
    assert set(state) == {"_extra_state"} | {"main_loss." + key for key in SUCCESSOR_KEYS}
    assert set(state["_extra_state"]) == STATE_FIELDS
    ours = make_wrapper(proxyloss, kind, **schedule)
    ours.load_state_dict(via(state, how, tmp_path))  # strict
    assert ours.get_extra_state() == original.get_extra_state()
    assert (ours.in_warmup, ours.in_blend, ours.main_weight, ours.current_temperature) == (
        original.in_warmup, original.in_blend, original.main_weight,
        original.current_temperature)
    for got, want in zip(queue_of(ours.main_loss, True), queue_of(original.main_loss, True),
                         strict=True):
        assert torch.equal(got, want)
    run_epochs([ours, original], range(saved_after_epochs, 7), steps, next_step, seed=16)
    assert ours.get_extra_state() == original.get_extra_state()


def test_a_resumed_successor_run_keeps_its_queue_at_the_next_batch():
    """A run saved in the main phase: the first batch hook after loading
    must not latch a new switch (which would empty the queue)."""
    original = make_wrapper(imbalanced_losses, "ap", warmup_epochs=1)
    run_epochs([original], range(3), 3, 0, seed=17)
    ours = make_wrapper(proxyloss, "ap", warmup_epochs=1)
    ours.load_state_dict(original.state_dict())
    ours.on_train_epoch_start(3)
    ours.on_train_batch_start(9)
    assert int((ours.main_loss._q_targets != -100).sum()) > 0
    assert ours.current_temperature < TEMPS["temp_start"]


def test_ours_wrapper_checkpoint_loads_into_the_successor():
    """The other direction: our state_dict (the successor's _extra_state and
    0.1.3's flat queue names, which 0.6.0 remaps) loads into 0.6.0."""
    schedule = dict(warmup_steps=4, blend_steps=3)
    ours = make_wrapper(proxyloss, "recall", **schedule)
    run_epochs([ours], range(2), 3, 0, seed=18)
    successor = make_wrapper(imbalanced_losses, "recall", **schedule)
    successor.load_state_dict(ours.state_dict())
    assert successor.get_extra_state() == ours.get_extra_state()
    run_epochs([ours, successor], range(2, 5), 3, 6, seed=19)


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "state_dict", "file"])
def test_ours_round_trip_continues_identically(how, tmp_path):
    schedule = dict(warmup_epochs=1, blend_epochs=2, final_main_weight=0.9)
    ours = make_wrapper(proxyloss, "ap", **schedule)
    next_step = run_epochs([ours], range(2), 3, 0, seed=20)
    if how == "deepcopy":
        other = copy.deepcopy(ours)
    elif how == "pickle":
        other = pickle.loads(pickle.dumps(ours))
    else:
        other = make_wrapper(proxyloss, "ap", **schedule)
        other.load_state_dict(via(ours.state_dict(), "file" if how == "file" else how,
                                  tmp_path))
    assert other.get_extra_state() == ours.get_extra_state()
    run_epochs([other, ours], range(2, 6), 3, next_step, seed=21)


@pytest.mark.parametrize("kind", ["ap", "recall"])
def test_ours_ranking_loss_round_trips_through_a_file_with_the_whole_module(kind, tmp_path):
    ours = make_loss(proxyloss, kind, 16)
    for logits, targets in batches(3, seed=22):
        ours(logits, targets)
    path = tmp_path / "module.pt"
    torch.save(ours, path)
    loaded = torch.load(path, weights_only=False)  # a whole module, not a state_dict
    continue_ranking(loaded, ours, seed=23)
