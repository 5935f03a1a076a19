"""gather_distributed across processes: Gloo on the CPU, 2 and 3 processes
from torch.multiprocessing.spawn, a FileStore under tmp_path (no port).

Every rank trains a small model (nn.Linear under DistributedDataParallel)
with a loss that gathers; beside it, each rank runs a single-process
reference: the same loss module with gather_distributed=False, fed the
concatenation of every rank's logits (each rank's rows computed by an
identical copy of the model at the same parameters) and targets, weights and
iid flags. Over train and eval steps with queues, uneven batches (a rank
with an empty batch, a rank with no positive), ignore_index rows,
sample_weight and iid_mask in some steps, the parent checks: the loss equals
the reference's (bit for bit: the op sees the same global batch; where the
ranks share the pair work, SmoothAPLoss-shared, to rounding, and bit for bit
across the ranks), every
parameter gradient after DDP's averaging equals the reference's gradient on
the concatenated batch (1e-12 in float64, 1e-5 in float32), and the loss's
buffers (the queues) are bitwise equal across ranks and to the reference's.

Also: ranks whose options or passed tensors disagree raise the same
ValueError on every rank (and the group stays usable), a rank that does not
call the loss makes the others raise the process group's timeout error,
gather_distributed=False computes each rank's own batch, True needs a
process group, the decision is taken at every call, and max_pool_size
subsampling draws the same rows on every rank.

The workers only compute and torch.save what they saw into tmp_path; the
assertions are made here, in the parent. A worker that raises fails its
test (torch.multiprocessing.spawn re-raises its traceback).
"""
import copy
import datetime
import os
import time
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

import proxyloss

C, D, IGNORE = 3, 4, -100

# (rank sizes of each step for 3 ranks; 2 ranks use the first two), mode,
# with sample_weight, with iid_mask. Step 1: rank 1 has an empty batch;
# step 4: the last rank has no positive (see _targets).
STEPS = [
    ((5, 3, 2), "train", False, False),
    ((4, 0, 3), "train", True, False),
    ((2, 6, 1), "train", False, True),
    ((3, 4, 2), "eval", False, False),
    ((6, 2, 0), "train", True, True),
    ((3, 3, 3), "train", False, False),
]
NO_POSITIVE_STEP, PER_CLASS_STEP = 4, 5


def _wrapper(gather):
    # Distributed: the wrapper's True is written to the main loss (whose own
    # False it overrides), the warmup loss keeps its None. Reference: False.
    return proxyloss.LossWarmupWrapper(
        proxyloss.SoftmaxFocalLoss(alpha=[0.5, 1.0, 2.0], gather_distributed=gather),
        proxyloss.SmoothAPLoss(C, queue_size=12, gather_distributed=False),
        warmup_steps=2, blend_steps=2, temp_start=0.5, temp_end=0.05, temp_decay_steps=4,
        gather_distributed=True if gather is None else False)


def _shared_smooth_ap(gather):
    loss = proxyloss.SmoothAPLoss(C, queue_size=12, temperature=0.1, gather_distributed=gather)
    loss._share_pair_work = True  # the ranks share the anchor terms (experimental)
    return loss


def _shared_smooth_ap_float32(gather):
    loss = proxyloss.SmoothAPLoss(C, queue_size=7, temperature=0.2, gather_distributed=gather)
    loss._share_pair_work = True
    return loss


# name: (kind, dtype, factory(gather_distributed))
CASES = {
    "SmoothAPLoss": ("ranking", torch.float64, lambda g: proxyloss.SmoothAPLoss(
        C, queue_size=12, temperature=0.1, gather_distributed=g)),
    "SmoothAPLoss-shared": ("ranking", torch.float64, _shared_smooth_ap),
    "SmoothAPLoss-shared-float32": ("ranking", torch.float32, _shared_smooth_ap_float32),
    "SmoothAPLoss-float32": ("ranking", torch.float32, lambda g: proxyloss.SmoothAPLoss(
        C, queue_size=7, temperature=0.2, gather_distributed=g)),
    "RecallAtQuantileLoss": ("ranking", torch.float64, lambda g: proxyloss.RecallAtQuantileLoss(
        C, quantile=0.3, queue_size=10, temperature=0.1, reduction="sum",
        update_queue_in_eval=True, gather_distributed=g)),
    "PAUCAtBudgetLoss-trapezoid": ("ranking", torch.float64, lambda g: proxyloss.PAUCAtBudgetLoss(
        C, alpha=0.0, beta=0.5, n_knots=3, queue_size=12, temperature=0.2,
        gather_distributed=g)),
    "PAUCAtBudgetLoss-pairwise": ("ranking", torch.float64, lambda g: proxyloss.PAUCAtBudgetLoss(
        C, alpha=0.1, beta=0.7, surrogate="pairwise", pos_numerator="live",
        budget_basis="population", queue_size=12, temperature=0.2, gather_distributed=g)),
    "SigmoidFocalLoss": ("sigmoid", torch.float64, lambda g: proxyloss.SigmoidFocalLoss(
        alpha=0.25, gamma=2.0, gather_distributed=g)),
    "SoftmaxFocalLoss-mean": ("softmax", torch.float64, lambda g: proxyloss.SoftmaxFocalLoss(
        alpha=[0.5, 1.0, 2.0], gamma=1.5, label_smoothing=0.1, gather_distributed=g)),
    "SoftmaxFocalLoss-mean_positive": ("softmax", torch.float64,
                                       lambda g: proxyloss.SoftmaxFocalLoss(
                                           gamma=2.0, reduction="mean_positive",
                                           background_class=0, gather_distributed=g)),
    "SoftmaxFocalLoss-none": ("softmax", torch.float64, lambda g: proxyloss.SoftmaxFocalLoss(
        gamma=2.0, reduction="none", gather_distributed=g)),
    "LossWarmupWrapper": ("wrapper", torch.float64, _wrapper),
}


# --- the data: every rank draws every rank's batch, and keeps its own ----------------

def _targets(kind, generator, n, no_positive):
    if kind == "sigmoid":
        if no_positive:
            return torch.zeros(n, C, dtype=torch.float64)
        return F.one_hot(torch.randint(0, C, (n,), generator=generator), C).double()
    ids = torch.randint(0, C, (n,), generator=generator)
    if no_positive:  # ranking: no positive of classes 0 and 1; softmax: background only
        ids.fill_(2 if kind == "ranking" else 0)
    ignored = torch.rand(n, generator=generator) < 0.2
    return ids.masked_fill(ignored, IGNORE)


def _step_data(case_index, step, world, kind, dtype):
    """Every rank's (x, targets, sample_weight, iid_mask) of this step."""
    sizes, _, weighted, with_iid = STEPS[step]
    generator = torch.Generator().manual_seed(1000 * case_index + step)
    batches = []
    for rank, n in enumerate(sizes[:world]):
        x = torch.randn(n, D, generator=generator, dtype=torch.float64).to(dtype)
        targets = _targets(kind, generator, n, step == NO_POSITIVE_STEP and rank == world - 1)
        weight = (0.5 + 1.5 * torch.rand(n, generator=generator, dtype=torch.float64)).to(dtype)
        if kind == "sigmoid":
            weight = weight.reshape(n, 1)  # dim 0 the rows', broadcast over the classes
        iid = torch.rand(n, generator=generator) < 0.7
        batches.append((x, targets, weight if weighted else None,
                        iid if with_iid and kind == "ranking" else None))
    return batches


def _call(loss_fn, kind, logits, targets, weight, iid, step):
    """The loss and the other results of one call (detached)."""
    kwargs = {}
    if weight is not None:
        kwargs["sample_weight"] = weight
    if iid is not None:
        kwargs["iid_mask"] = iid
    if kind == "ranking" and step == PER_CLASS_STEP:
        kwargs["return_per_class"] = True
    if isinstance(loss_fn, proxyloss.PAUCAtBudgetLoss) and step == NO_POSITIVE_STEP:
        kwargs["return_diagnostics"] = True
    out = loss_fn(logits, targets, **kwargs)
    if not isinstance(out, tuple):
        return out, []
    extras = []
    for item in out[1:]:
        if isinstance(item, dict):
            extras.append({key: value.detach().clone() for key, value in item.items()})
        else:
            extras.append(item.detach().clone())
    return out[0], extras


def _buffers(module):
    return {name: value.detach().clone() for name, value in module.named_buffers()}


def _train_case(rank, world, case_index, name):
    kind, dtype, make = CASES[name]
    torch.manual_seed(0)  # the same initial model on every rank
    model = nn.Linear(D, C).to(dtype)
    reference_model = copy.deepcopy(model)
    ddp = nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.5)
    loss_fn, reference = make(None), make(False)
    records = []
    for step, (_, mode, _, _) in enumerate(STEPS):
        batches = _step_data(case_index, step, world, kind, dtype)
        x, targets, weight, iid = batches[rank]
        training = mode == "train"
        for module in (ddp, reference_model, loss_fn, reference):
            module.train(training)
        if kind == "wrapper" and training:
            loss_fn.on_train_batch_start(step)
            reference.on_train_batch_start(step)
        with torch.no_grad():  # the reference at the distributed model's parameters
            for want, got in zip(reference_model.parameters(), model.parameters()):
                want.copy_(got)
        with torch.set_grad_enabled(training):
            optimizer.zero_grad()
            loss, extras = _call(loss_fn, kind, ddp(x), targets, weight, iid, step)
            if training:
                (loss.sum() if loss.dim() else loss).backward()
            # The single-process reference: the concatenation of every rank's
            # rows, each computed as its rank computes it.
            reference_model.zero_grad()
            logits = torch.cat([reference_model(batch[0]) for batch in batches])
            joined = [torch.cat([batch[i] for batch in batches])
                      if batches[0][i] is not None else None for i in (1, 2, 3)]
            want, want_extras = _call(reference, kind, logits, *joined, step)
            if training:
                (want.sum() if want.dim() else want).backward()
        record = {"loss": loss.detach().clone(), "want_loss": want.detach().clone(),
                  "extras": extras, "want_extras": want_extras,
                  "buffers": _buffers(loss_fn), "want_buffers": _buffers(reference),
                  "local_targets": targets, "training": training}
        if training:
            record["grads"] = [p.grad.clone() for p in model.parameters()]
            record["want_grads"] = [p.grad.clone() for p in reference_model.parameters()]
            optimizer.step()
        records.append(record)
    return records


# --- faults: every rank must raise the same ValueError -------------------------------

def _logits(rank, n=4, classes=C):
    return torch.randn(n, classes, generator=torch.Generator().manual_seed(rank))


def _labels(n=4):
    return torch.arange(n) % C


def _fault_options(rank):
    proxyloss.SmoothAPLoss(C, queue_size=8, temperature=0.1 * (rank + 1))(_logits(rank), _labels())


def _fault_queue_size(rank):
    proxyloss.SmoothAPLoss(C, queue_size=8 + rank)(_logits(rank), _labels())


def _fault_classes(rank):
    proxyloss.RecallAtQuantileLoss(C + rank, quantile=0.3)(_logits(rank, classes=C + rank),
                                                           _labels())


def _fault_reduction(rank):
    proxyloss.PAUCAtBudgetLoss(C, beta=0.5, reduction="sum" if rank else "mean")(
        _logits(rank), _labels())


def _fault_focal_options(rank):
    proxyloss.SoftmaxFocalLoss(alpha=[1.0, 1.0, 1.0 + rank])(_logits(rank), _labels())


def _fault_weight_on_one_rank(rank):
    weight = torch.ones(4) if rank == 0 else None
    proxyloss.SmoothAPLoss(C, queue_size=8)(_logits(rank), _labels(), sample_weight=weight)


def _fault_focal_weight_on_one_rank(rank):
    weight = torch.ones(4, 1) if rank == 1 else None
    proxyloss.SigmoidFocalLoss()(_logits(rank), F.one_hot(_labels(), C).float(),
                                 sample_weight=weight)


def _fault_iid_mask_on_one_rank(rank):
    iid = torch.ones(4, dtype=torch.bool) if rank == 0 else None
    proxyloss.PAUCAtBudgetLoss(C, beta=0.5)(_logits(rank), _labels(), iid)


def _fault_malformed_rows(rank):
    iid = torch.ones(4 if rank == 0 else 2, dtype=torch.bool)
    proxyloss.PAUCAtBudgetLoss(C, beta=0.5)(_logits(rank), _labels(), iid)


def _fault_queue_pointer(rank):
    loss = proxyloss.SmoothAPLoss(C, queue_size=16)
    loss(_logits(rank), _labels())
    if rank == 1:
        loss.reset_queue()
    loss(_logits(rank), _labels())


def _fault_queue_contents(rank):
    loss = proxyloss.SmoothAPLoss(C, queue_size=16, gather_distributed=False)
    loss(_logits(rank), _labels())  # each rank queues its own rows
    loss.gather_distributed = None
    loss(_logits(rank), _labels())


def _fault_train_and_eval(rank):
    loss = proxyloss.SmoothAPLoss(C, queue_size=8)
    loss.train(rank == 0)
    loss(_logits(rank), _labels())


# name: (the fault, what every rank's message must contain: a string or strings)
FAULTS = {
    "temperature": (_fault_options, "temperature differs: rank 0 has 0.1, rank 1 has 0.2"),
    "queue_size": (_fault_queue_size, "queue_size differs: rank 0 has 8, rank 1 has 9"),
    "num_classes": (_fault_classes, "num_classes differs: rank 0 has 3, rank 1 has 4"),
    "reduction": (_fault_reduction, "reduction differs: rank 0 has 'mean', rank 1 has 'sum'"),
    "focal alpha": (_fault_focal_options, "alpha differs: rank 0 has (1.0, 1.0, 1.0), rank 1 "
                                          "has (1.0, 1.0, 2.0)"),
    "sample_weight on one rank": (_fault_weight_on_one_rank, "sample_weight differs: rank 0 "
                                  "passes float32 [N], rank 1 passes None"),
    "focal sample_weight on one rank": (_fault_focal_weight_on_one_rank, "sample_weight "
                                        "differs: rank 0 passes None, rank 1 passes float32 "
                                        "[N, 1]"),
    "iid_mask on one rank": (_fault_iid_mask_on_one_rank, "iid_mask differs: rank 0 passes "
                             "bool [N], rank 1 passes None"),
    "malformed rows": (_fault_malformed_rows, "rank 1: iid_mask has 2 rows but logits has 4"),
    "queue pointer": (_fault_queue_pointer, ("write pointers differ across ranks (rank 0: ",
                                             "rank 1: 0", "reset_queue()")),
    "queue contents": (_fault_queue_contents, "the queues' contents differ across ranks"),
    "train and eval": (_fault_train_and_eval, "queue updated (training or "
                       "update_queue_in_eval) differs: rank 0 has True, rank 1 has False"),
}


def _faults(rank):
    messages = {}
    for name, (fault, _) in FAULTS.items():
        try:
            fault(rank)
        except ValueError as error:
            messages[name] = str(error)
        else:
            messages[name] = None
    return messages


# --- the worker ----------------------------------------------------------------------

def _own_batch(rank):
    generator = torch.Generator().manual_seed(50 + rank)
    return torch.randn(4 + rank, C, generator=generator), torch.arange(4 + rank) % C


def _worker(rank, world, folder):
    torch.set_num_threads(1)
    results = {}
    # Decided at every call: a loss that computed alone before the group
    # exists gathers once it does.
    early = proxyloss.SmoothAPLoss(C, queue_size=0)
    early(*_own_batch(rank))
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=60))
    batches = [_own_batch(r) for r in range(world)]
    results["early"] = (early(*_own_batch(rank)),
                        proxyloss.SmoothAPLoss(C, queue_size=0, gather_distributed=False)(
                            torch.cat([b[0] for b in batches]),
                            torch.cat([b[1] for b in batches])))
    results["cases"] = {name: _train_case(rank, world, index, name)
                        for index, name in enumerate(CASES)}
    # gather_distributed=False: each rank ranks its own batch, as alone.
    alone, reference = (proxyloss.SmoothAPLoss(C, queue_size=8, gather_distributed=False),
                        proxyloss.SmoothAPLoss(C, queue_size=8, gather_distributed=False))
    results["false"] = []
    for _ in range(2):
        logits, labels = _own_batch(rank)
        results["false"].append((alone(logits, labels), reference(logits, labels),
                                 _buffers(alone), _buffers(reference)))
    # max_pool_size: the ranks' generators differ, the subsample does not.
    torch.manual_seed(1234 + rank)
    subsampling = proxyloss.SmoothAPLoss(C, queue_size=0, max_pool_size=6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results["subsampled"] = [subsampling(*_own_batch(rank)) for _ in range(3)]
    results["subsampled_warned"] = any("max_pool_size" in str(w.message) for w in caught)
    # The forms a rank may choose alone: targets [N] or [N, 1], iid_mask
    # bool or uint8.
    iids = [torch.arange(b[1].shape[0]) % 3 != r for r, b in enumerate(batches)]
    logits, labels = batches[rank]
    pauc = proxyloss.PAUCAtBudgetLoss(C, beta=0.5, queue_size=16)
    got = pauc(logits, labels.reshape(-1, 1) if rank == 0 else labels,
               iids[rank].to(torch.uint8) if rank == 1 else iids[rank])
    want = proxyloss.PAUCAtBudgetLoss(C, beta=0.5, queue_size=16, gather_distributed=False)
    results["forms"] = (got, want(torch.cat([b[0] for b in batches]),
                                  torch.cat([b[1] for b in batches]), torch.cat(iids)),
                        _buffers(pauc), _buffers(want))
    results["faults"] = _faults(rank)
    # After the faults the ranks are still in step.
    results["after_faults"] = proxyloss.SmoothAPLoss(C, queue_size=0)(*_own_batch(rank))
    dist.destroy_process_group()
    # A one-rank group: True gathers nothing and computes this batch.
    dist.init_process_group("gloo", init_method=f"file://{folder}/single{rank}", rank=0,
                            world_size=1)
    results["one_rank"] = (proxyloss.PAUCAtBudgetLoss(C, beta=0.5, gather_distributed=True)(
        *_own_batch(rank)), proxyloss.PAUCAtBudgetLoss(C, beta=0.5, gather_distributed=False)(
        *_own_batch(rank)))
    dist.destroy_process_group()
    torch.save(results, os.path.join(folder, f"rank{rank}.pt"))


@pytest.fixture(scope="module", params=[2, 3], ids=["2ranks", "3ranks"])
def runs(request, tmp_path_factory):
    world = request.param
    folder = tmp_path_factory.mktemp(f"gather{world}")
    mp.spawn(_worker, args=(world, str(folder)), nprocs=world, join=True)
    return world, [torch.load(folder / f"rank{rank}.pt") for rank in range(world)]


# --- the checks ----------------------------------------------------------------------

def _tolerance(name):
    return (1e-5, 1e-6) if CASES[name][1] == torch.float32 else (1e-12, 1e-12)


# The cases whose ranks share the pair work: their loss adds the ranks'
# shares, in another order than the single process adds the anchor terms.
SHARED = ("SmoothAPLoss-shared", "SmoothAPLoss-shared-float32")


def _same_values(got, want, what, name):
    """Bit for bit, or to the case's tolerance where the ranks share the work
    (NaN where the reference is NaN, either way)."""
    if name not in SHARED:
        _equal(got, want, what)
        return
    if isinstance(got, dict):
        assert got.keys() == want.keys(), what
        for key in got:
            _same_values(got[key], want[key], f"{what} {key}", name)
        return
    rtol, atol = _tolerance(name)
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol, equal_nan=True,
                               msg=lambda m: f"{what}: {m}")


def _equal(got, want, what):
    if isinstance(got, dict):
        assert got.keys() == want.keys(), what
        for key in got:
            _equal(got[key], want[key], f"{what} {key}")
        return
    assert got.dtype == want.dtype and got.shape == want.shape, what
    assert torch.equal(got, want) or (torch.isnan(got).equal(torch.isnan(want))
                                      and torch.equal(got.nan_to_num(), want.nan_to_num())), (
        f"{what}: {got} != {want}")


@pytest.mark.parametrize("name", list(CASES))
def test_the_loss_and_its_gradient_are_the_single_process_ones_on_the_concatenation(
        runs, name):
    world, results = runs
    rtol, atol = _tolerance(name)
    for rank, result in enumerate(results):
        for step, record in enumerate(result["cases"][name]):
            where = f"{name}, {world} ranks, rank {rank}, step {step}"
            _same_values(record["loss"], record["want_loss"], f"loss: {where}", name)
            extras, want_extras = record["extras"], record["want_extras"]
            assert len(extras) == len(want_extras), where
            for got, want in zip(extras, want_extras):
                if isinstance(got, dict):  # grad_pos_count: this rank's own positives
                    want = dict(want)
                    local = record["local_targets"]
                    want["grad_pos_count"] = torch.bincount(local[local != IGNORE],
                                                            minlength=C)
                _same_values(got, want, f"per class / diagnostics: {where}", name)
            if record["training"]:
                for index, (got, want) in enumerate(zip(record["grads"],
                                                        record["want_grads"])):
                    torch.testing.assert_close(got, want, rtol=rtol, atol=atol,
                                               msg=lambda m: f"gradient {index}: {where}: {m}")
                    # The weight's gradient is not zero (not vacuous). The
                    # bias's may be: a ranking loss is invariant to shifting a
                    # class's scores, so on a queue-less pool its bias gradient
                    # is zero in exact arithmetic (rounding noise, or 0).
                    assert index != 0 or got.abs().sum() > 0, (
                        f"the weight's gradient is zero: {where}")


@pytest.mark.parametrize("name", list(CASES))
def test_the_queues_are_bitwise_identical_across_ranks_and_to_the_single_process_one(
        runs, name):
    world, results = runs
    steps = len(STEPS)
    for step in range(steps):
        first = results[0]["cases"][name][step]
        for rank, result in enumerate(results):
            record = result["cases"][name][step]
            where = f"{name}, {world} ranks, rank {rank}, step {step}"
            _equal(record["buffers"], record["want_buffers"], f"buffers: {where}")
            _equal(record["buffers"], first["buffers"], f"buffers against rank 0: {where}")
            _equal(record["loss"], first["loss"], f"loss against rank 0: {where}")
    if CASES[name][0] in ("ranking", "wrapper"):  # the queue saw rows
        last = results[0]["cases"][name][-1]["buffers"]
        assert any(key.endswith("_q_ptr") for key in last), name


def test_the_steps_exercise_what_they_claim(runs):
    world, results = runs
    assert 0 in STEPS[1][0][:world]  # an empty batch
    for name, (kind, _, _) in CASES.items():
        local = results[world - 1]["cases"][name][NO_POSITIVE_STEP]["local_targets"]
        if kind == "ranking":  # no positive of classes 0 and 1
            assert not ((local == 0) | (local == 1)).any(), name
        elif kind == "sigmoid":
            assert not local.any(), name
        else:  # background only
            assert not (local > 0).any(), name
    for rank in range(world):
        assert (results[rank]["cases"]["SmoothAPLoss"][0]["local_targets"] == IGNORE).any() or (
            rank > 0)


def test_a_loss_that_ran_before_the_group_gathers_after(runs):
    _, results = runs
    for result in results:
        got, want = result["early"]
        _equal(got, want, "early")


def test_gather_distributed_false_computes_each_ranks_own_batch(runs):
    _, results = runs
    for result in results:
        for got, want, buffers, want_buffers in result["false"]:
            _equal(got, want, "False")
            _equal(buffers, want_buffers, "False buffers")
    assert not torch.equal(results[0]["false"][0][0], results[1]["false"][0][0])


def test_ranks_may_pass_targets_and_iid_mask_in_different_forms(runs):
    _, results = runs
    for result in results:
        got, want, buffers, want_buffers = result["forms"]
        _equal(got, want, "forms")
        _equal(buffers, want_buffers, "forms: buffers")


def test_subsampling_draws_the_same_rows_on_every_rank(runs):
    _, results = runs
    for result in results:
        assert result["subsampled_warned"]
        for got, want in zip(result["subsampled"], results[0]["subsampled"]):
            _equal(got, want, "subsampled")


@pytest.mark.parametrize("fault", list(FAULTS))
def test_ranks_that_disagree_raise_the_same_value_error_on_every_rank(runs, fault):
    world, results = runs
    messages = [result["faults"][fault] for result in results]
    for rank, message in enumerate(messages):
        assert message is not None, f"rank {rank} of {world} raised nothing: {fault}"
        expected = FAULTS[fault][1]
        for part in (expected,) if isinstance(expected, str) else expected:
            assert part in message, message
        assert message == messages[0], (message, messages[0])
    assert "gather_distributed" in messages[0]
    for result in results:
        _equal(result["after_faults"], results[0]["after_faults"], "after the faults")


def test_gather_distributed_true_on_a_one_rank_group_computes_this_batch(runs):
    _, results = runs
    for result in results:
        _equal(*result["one_rank"], "one rank")


# --- without a process group ---------------------------------------------------------

def test_gather_distributed_true_without_a_process_group_raises():
    assert not dist.is_initialized()
    logits, targets = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    wrapper = proxyloss.LossWarmupWrapper(nn.CrossEntropyLoss(), proxyloss.SmoothAPLoss(3),
                                          gather_distributed=True)
    wrapper.on_train_batch_start(0)
    for loss in (proxyloss.PAUCAtBudgetLoss(3, beta=0.5, gather_distributed=True), wrapper):
        with pytest.raises(RuntimeError, match="gather_distributed=True needs an initialised"):
            loss(logits, targets)
    for loss in (proxyloss.PAUCAtBudgetLoss(3, beta=0.5), proxyloss.SmoothAPLoss(3),
                 proxyloss.SoftmaxFocalLoss()):
        loss(logits, targets)  # None: nothing to gather


# --- a rank that never calls the loss: the process group's timeout --------------------

def _timeout_worker(rank, world, folder):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=5))
    dist.barrier()
    done = os.path.join(folder, "done")
    if rank == 0:
        start = time.monotonic()
        try:
            proxyloss.SmoothAPLoss(C)(*_own_batch(rank))
            outcome = "no error"
        except RuntimeError as error:
            outcome = f"RuntimeError: {error}"
        with open(os.path.join(folder, "outcome"), "w") as file:
            file.write(f"{time.monotonic() - start:.1f}\n{outcome}")
        with open(done, "w"):
            pass
    else:  # never calls the loss; stays alive until rank 0 has its error
        deadline = time.monotonic() + 60
        while not os.path.exists(done) and time.monotonic() < deadline:
            time.sleep(0.1)


def test_a_rank_that_does_not_call_the_loss_surfaces_the_timeout(tmp_path):
    mp.spawn(_timeout_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    seconds, outcome = (tmp_path / "outcome").read_text().split("\n", 1)
    assert outcome.startswith("RuntimeError") and "timed out" in outcome.lower(), outcome
    assert 4 <= float(seconds) < 30, seconds  # it waited for the group's 5 s timeout
