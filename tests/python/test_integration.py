"""The losses where a PyTorch user puts them: module protocols
(state_dict/load_state_dict with the queue buffers, .to(torch.float64),
train()/eval() with update_queue_in_eval, copy.deepcopy, pickle), inside a
model wrapped by DistributedDataParallel (CPU, Gloo, 2 processes from
torch.multiprocessing.spawn, a FileStore under tmp_path, no port), under
torch.autocast("cpu", dtype=torch.bfloat16), and in a PyTorch-Lightning-style
loop (a stand-in LightningModule with the seed README's hooks, driven by a
small fake trainer; Lightning itself is not needed).

Where the seed (proxy-losses 0.1.3) or pytorch-fairloss 0.1.1 can run the
same thing, ours must give the same numbers (1e-12 in float64, 2e-5 in
float32).

Environment: PROXYLOSS_LIBRARY and PYTHONPATH (python/) when run from the
build tree, or an installed proxyloss (the spawned processes inherit both).
"""
import copy
import datetime
import pickle

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

import proxyloss

proxy_losses = pytest.importorskip("proxy_losses")
fairloss = pytest.importorskip("fairloss")

SEED_QUEUE_KEYS = {"_q_logits", "_q_targets", "_q_ptr"}
# Ours adds the successor's per-row weight.
QUEUE_KEYS = SEED_QUEUE_KEYS | {"_q_weight"}


def assert_close(got, want, dtype, what=""):
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(got, want, rtol=tol, atol=tol, equal_nan=True, msg=what)


def ranking_pair(kind, **options):
    options.setdefault("queue_size", 16)
    if kind == "ap":
        return (proxyloss.SmoothAPLoss(num_classes=3, temperature=0.1, **options),
                proxy_losses.SmoothAPLoss(num_classes=3, temperature=0.1, **options))
    return (proxyloss.RecallAtQuantileLoss(num_classes=3, quantile=0.2, temperature=0.1,
                                           **options),
            proxy_losses.RecallAtQuantileLoss(num_classes=3, quantile=0.2, temperature=0.1,
                                              **options))


def batch(generator, N=9, dtype=torch.float32):
    targets = torch.randint(0, 3, (N,), generator=generator)
    return torch.randn(N, 3, generator=generator, dtype=dtype), targets


def step_both(ours, seed, logits, targets, what):
    x, y = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    got, want = ours(x, targets), seed(y, targets)
    assert_close(got, want, logits.dtype, f"loss: {what}")
    got.backward()
    want.backward()
    assert_close(x.grad, y.grad, logits.dtype, f"gradient: {what}")
    for key in SEED_QUEUE_KEYS:
        assert torch.equal(getattr(ours, key), getattr(seed, key)), f"{key}: {what}"


# --- module protocols -------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ap", "recall"])
def test_state_dict_holds_the_queue_and_loads_into_a_fresh_module(kind):
    ours, _ = ranking_pair(kind)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        ours(*batch(generator))
    state = ours.state_dict()
    assert set(state) == QUEUE_KEYS
    assert int(state["_q_ptr"]) == 27 % 16
    fresh, _ = ranking_pair(kind)
    fresh.load_state_dict(state)
    for key in QUEUE_KEYS:
        assert torch.equal(getattr(fresh, key), getattr(ours, key))
    logits, targets = batch(generator)
    assert torch.equal(fresh(logits, targets), ours(logits, targets))
    state["_q_logits"].add_(1)  # a state_dict is a view of the buffers, as torch's
    assert torch.equal(ours._q_logits, state["_q_logits"])


@pytest.mark.parametrize("kind", ["ap", "recall"])
def test_to_float64_converts_the_queue_and_matches_the_seed(kind):
    ours, seed = ranking_pair(kind)
    generator = torch.Generator().manual_seed(1)
    for index in range(2):
        step_both(ours, seed, *batch(generator), f"float32 step {index}")
    assert ours.to(torch.float64) is ours
    seed.to(torch.float64)
    assert ours._q_logits.dtype == torch.float64
    assert ours._q_targets.dtype == torch.long and ours._q_ptr.dtype == torch.long
    for index in range(3):
        step_both(ours, seed, *batch(generator, dtype=torch.float64), f"float64 step {index}")
    # float32 logits into the float64 queue (the seed casts the queue to the
    # logits' dtype), and float64 logits into a float32 queue again.
    for index in range(2):
        step_both(ours, seed, *batch(generator), f"float32 logits, float64 queue {index}")
    ours.to(torch.float32)
    seed.to(torch.float32)
    assert ours._q_logits.dtype == torch.float32
    step_both(ours, seed, *batch(generator), "back to float32")
    step_both(ours, seed, *batch(generator, dtype=torch.float64), "float64 logits")


@pytest.mark.parametrize("update_queue_in_eval", [False, True])
@pytest.mark.parametrize("kind", ["ap", "recall"])
def test_train_and_eval_modes_move_the_queue_as_the_seed(kind, update_queue_in_eval):
    ours, seed = ranking_pair(kind, update_queue_in_eval=update_queue_in_eval)
    model_ours = nn.Sequential(nn.Identity(), ours)  # eval() reaches a submodule
    model_seed = nn.Sequential(nn.Identity(), seed)
    generator = torch.Generator().manual_seed(2)
    for index, training in enumerate([True, True, False, False, True, False]):
        model_ours.train(training)
        model_seed.train(training)
        assert ours.training is training
        before = ours._q_ptr.clone()
        step_both(ours, seed, *batch(generator, N=5), f"step {index} training={training}")
        moved = not torch.equal(ours._q_ptr, before)
        assert moved == (training or update_queue_in_eval), index


@pytest.mark.parametrize("kind", ["ap", "recall"])
def test_deepcopy_and_pickle_copy_the_queue_and_the_options(kind):
    ours, _ = ranking_pair(kind, queue_size=8, reduction="sum", ignore_index=-1,
                           update_queue_in_eval=True)
    generator = torch.Generator().manual_seed(3)
    ours(*batch(generator))
    for other in (copy.deepcopy(ours), pickle.loads(pickle.dumps(ours))):
        assert other is not ours and other._q_logits.data_ptr() != ours._q_logits.data_ptr()
        assert repr(other) == repr(ours)
        for key in QUEUE_KEYS:
            assert torch.equal(getattr(other, key), getattr(ours, key))
        logits, targets = batch(generator)
        assert torch.equal(copy.deepcopy(ours)(logits, targets), other(logits, targets))


def test_deepcopy_and_pickle_of_the_other_losses():
    logits = torch.randn(6, 4, dtype=torch.float64)
    targets = torch.tensor([0, 1, 2, 3, 1, 0])
    onehot = F.one_hot(targets, 4).double()
    losses = [(proxyloss.FairLoss(nn.CrossEntropyLoss(weight=torch.rand(4, dtype=torch.float64),
                                                      reduction="none")), targets),
              (proxyloss.SoftmaxFocalLoss(alpha=[0.1, 0.2, 0.3, 0.4]), targets),
              (proxyloss.SigmoidFocalLoss(alpha=0.3, gamma=1.5), onehot)]
    for loss, target in losses:
        want = loss(logits, target)
        for other in (copy.deepcopy(loss), pickle.loads(pickle.dumps(loss))):
            assert torch.equal(other(logits, target), want), type(loss).__name__
        assert loss.state_dict().keys() == copy.deepcopy(loss).state_dict().keys()
    focal = proxyloss.SoftmaxFocalLoss(alpha=[0.1, 0.2, 0.3, 0.4]).to(torch.float64)
    assert focal.alpha.dtype == torch.float64 and set(focal.state_dict()) == {"alpha"}


class ModelWithCriterion(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 3)
        self.criterion = proxyloss.LossWarmupWrapper(
            nn.CrossEntropyLoss(), proxyloss.SmoothAPLoss(num_classes=3, queue_size=8),
            warmup_epochs=1, blend_epochs=1)


def test_a_wrapper_inside_a_model_round_trips_through_state_dict_and_deepcopy():
    torch.manual_seed(4)
    model = ModelWithCriterion()
    model.criterion.on_train_epoch_start(1)
    model.criterion.on_train_batch_start(5)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    model.criterion(model.net(x), y).backward()
    state = model.state_dict()
    assert {"net.weight", "net.bias", "criterion._extra_state"} <= set(state)
    assert {"criterion.main_loss." + key for key in QUEUE_KEYS} <= set(state)
    model.eval()  # the comparisons below leave the queue as it is
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        fresh = ModelWithCriterion().eval()
        fresh.load_state_dict(other.state_dict())
        for candidate in (other, fresh):
            assert not candidate.training and not candidate.criterion.main_loss.training
            assert candidate.criterion.get_extra_state() == model.criterion.get_extra_state()
            assert torch.equal(candidate.criterion.main_loss._q_logits,
                               model.criterion.main_loss._q_logits)
            assert torch.equal(candidate.criterion(candidate.net(x), y),
                               model.criterion(model.net(x), y))


# --- torch.distributed: gather_distributed ----------------------------------------

def test_gather_distributed_true_without_a_process_group_raises():
    assert not dist.is_initialized()
    logits, targets = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    for loss, target in [(proxyloss.SmoothAPLoss(3, gather_distributed=True), targets),
                         (proxyloss.RecallAtQuantileLoss(3, gather_distributed=True), targets),
                         (proxyloss.SoftmaxFocalLoss(gather_distributed=True), targets),
                         (proxyloss.SigmoidFocalLoss(gather_distributed=True),
                          F.one_hot(targets, 3).float())]:
        with pytest.raises(RuntimeError, match="gather_distributed=True needs an initialised"):
            loss(logits, target)
        loss.gather_distributed = None  # decided at every call: now it computes
        loss(logits, target)


class Classifier(nn.Module):
    """A model holding its loss as a submodule; forward returns the loss."""

    def __init__(self, criterion):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
        self.criterion = criterion

    def forward(self, x, y):
        return self.criterion(self.net(x), y)


def ddp_criteria():
    """(name, factory) of the losses trained under DDP, float64."""
    return [
        ("SmoothAPLoss", lambda: proxyloss.SmoothAPLoss(
            num_classes=3, queue_size=16, temperature=0.1, gather_distributed=False)),
        ("RecallAtQuantileLoss", lambda: proxyloss.RecallAtQuantileLoss(
            num_classes=3, quantile=0.25, queue_size=16, temperature=0.1,
            gather_distributed=False)),
        ("LossWarmupWrapper", lambda: proxyloss.LossWarmupWrapper(  # main loss: None
            nn.CrossEntropyLoss(), proxyloss.SmoothAPLoss(num_classes=3, queue_size=16),
            warmup_epochs=1, blend_epochs=1, temp_start=0.5, temp_end=0.05,
            temp_decay_steps=4, gather_distributed=False)),
        ("FairLoss", lambda: proxyloss.FairLoss(smooth_max_beta=10.0, scaling_factor=5.0)),
        ("SoftmaxFocalLoss", lambda: proxyloss.SoftmaxFocalLoss(
            alpha=[0.5, 1.0, 2.0], gather_distributed=False)),
    ]


def _check_gathering_under_the_group(rank, world_size):
    """Under the group the losses gather (None, or True): every rank's value
    is the single-process loss of the concatenated batches (in detail:
    test_distributed.py); with gather_distributed=False each rank computes
    its own batch."""
    def batch(r):
        return torch.randn(6, 3, generator=torch.Generator().manual_seed(r)), \
            torch.tensor([0, 1, 2, 0, 1, r % 3])

    everyone = [batch(r) for r in range(world_size)]
    logits, targets = everyone[rank]
    all_logits, all_targets = (torch.cat([b[0] for b in everyone]),
                               torch.cat([b[1] for b in everyone]))
    one_hot = lambda t: F.one_hot(t, 3).float()  # noqa: E731
    same = lambda t: t  # noqa: E731
    gathering = [  # (factory of the loss given its gather_distributed, targets' form)
        (lambda g: proxyloss.SmoothAPLoss(3, gather_distributed=g), None, same),
        (lambda g: proxyloss.SmoothAPLoss(3, gather_distributed=g), True, same),
        (lambda g: proxyloss.RecallAtQuantileLoss(3, quantile=0.5, temperature=0.5,
                                                  gather_distributed=g), None, same),
        (lambda g: proxyloss.SoftmaxFocalLoss(gather_distributed=g), None, same),
        (lambda g: proxyloss.SigmoidFocalLoss(gather_distributed=g), True, one_hot),
        (lambda g: proxyloss.LossWarmupWrapper(nn.CrossEntropyLoss(), proxyloss.SmoothAPLoss(3),
                                               gather_distributed=g), None, same),
    ]
    for make, option, form in gathering:
        got = make(option)(logits, form(targets))
        assert_close(got, make(False)(all_logits, form(all_targets)), torch.float32,
                     f"rank {rank}: {make(option)} gathered")
        alone = make(False)(logits, form(targets))
        assert not torch.equal(got, alone), f"rank {rank}: {make(option)} did not gather"
    # In warmup the wrapper calls only the warmup loss: nothing to gather.
    warming = proxyloss.LossWarmupWrapper(nn.CrossEntropyLoss(), proxyloss.SmoothAPLoss(3),
                                          warmup_epochs=1)
    assert_close(warming(logits, targets), F.cross_entropy(logits, targets), torch.float32)


def _ddp_worker(rank, world_size, folder, broadcast_buffers):
    torch.set_num_threads(1)
    # A loss that ran before init_process_group decides again at every call.
    early = proxyloss.SmoothAPLoss(3, queue_size=4)
    early(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank,
                            world_size=world_size, timeout=datetime.timedelta(seconds=120))
    try:
        # It gathers now, and its queue (this rank's rows) differs from the
        # other rank's: an error on every rank, not a silent divergence.
        try:
            early(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
            raise AssertionError("no ValueError after init_process_group")
        except ValueError as error:
            assert "queues' contents differ across ranks" in str(error), str(error)
        early.reset_queue()
        early(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
        _check_gathering_under_the_group(rank, world_size)
        trained = []
        for name, make in ddp_criteria():
            _train_under_ddp(rank, world_size, name, make, broadcast_buffers)
            trained.append(name)
    finally:
        dist.destroy_process_group()
    # A one-process group: nothing to gather, None computes alone.
    dist.init_process_group("gloo", init_method=f"file://{folder}/single{rank}", rank=0,
                            world_size=1)
    try:
        proxyloss.SmoothAPLoss(3)(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    finally:
        dist.destroy_process_group()
    with open(f"{folder}/done{rank}", "w") as done:
        done.write(" ".join(trained))


def _buffers_of(module):
    return {name: value.clone() for name, value in module.named_buffers()}


def _train_under_ddp(rank, world_size, name, make, broadcast_buffers):
    torch.manual_seed(0)  # the same initial model on every rank
    model = Classifier(make()).double()
    alone = copy.deepcopy(model)  # what this rank computes by itself
    ddp = nn.parallel.DistributedDataParallel(model, broadcast_buffers=broadcast_buffers)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    alone_optimizer = torch.optim.SGD(alone.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(100 + rank)  # each rank its own batches
    is_wrapper = name == "LossWarmupWrapper"
    for step in range(6):
        where = f"rank {rank} {name} step {step} broadcast_buffers={broadcast_buffers}"
        if is_wrapper:
            for criterion in (model.criterion, alone.criterion):
                criterion.on_train_epoch_start(step // 2)
                criterion.on_train_batch_start(step)
        x = torch.randn(7, 5, generator=generator, dtype=torch.float64)
        y = torch.randint(0, 3, (7,), generator=generator)
        if broadcast_buffers:
            # DDP copies rank 0's buffers (here: the queue) into every rank
            # before each forward: do the same for the reference.
            for buffer in alone.buffers():
                dist.broadcast(buffer, 0)
        optimizer.zero_grad()
        ddp(x, y).backward()
        alone_optimizer.zero_grad()
        alone(x, y).backward()
        # DDP semantics: the gradient is the mean of the ranks' own gradients.
        for (param_name, got), want in zip(model.named_parameters(), alone.parameters()):
            mean = want.grad.clone()
            dist.all_reduce(mean)
            mean /= world_size
            torch.testing.assert_close(got.grad, mean, rtol=1e-12, atol=1e-12,
                                       msg=f"{param_name} gradient: {where}")
            want.grad.copy_(mean)
        optimizer.step()
        alone_optimizer.step()
        for (param_name, got), want in zip(model.named_parameters(), alone.parameters()):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12,
                                       msg=f"{param_name}: {where}")
            rank0 = got.detach().clone()
            dist.broadcast(rank0, 0)
            assert torch.equal(got, rank0), f"{param_name} differs across ranks: {where}"
        got_buffers, want_buffers = _buffers_of(model), _buffers_of(alone)
        assert got_buffers.keys() == want_buffers.keys()
        for buffer_name, value in got_buffers.items():
            assert torch.equal(value, want_buffers[buffer_name]), f"{buffer_name}: {where}"
            if buffer_name.endswith("_q_ptr"):  # same batch sizes: same pointer
                rank0 = value.clone()
                dist.broadcast(rank0, 0)
                assert torch.equal(value, rank0), where
    if name in ("SmoothAPLoss", "RecallAtQuantileLoss"):
        queue = model.criterion._q_logits.clone()
        other = queue.clone()
        dist.broadcast(other, 0)
        # Each rank pushed its own last batch after the last broadcast.
        assert (rank == 0) == torch.equal(queue, other), name


@pytest.mark.parametrize("broadcast_buffers", [True, False])
def test_losses_inside_a_ddp_model_on_two_gloo_processes(broadcast_buffers, tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path), broadcast_buffers), nprocs=2, join=True)
    names = " ".join(name for name, _ in ddp_criteria())
    for rank in range(2):
        assert (tmp_path / f"done{rank}").read_text() == names


# --- autocast ------------------------------------------------------------------------

AUTOCAST_LOSSES = [
    ("SmoothAPLoss", lambda: proxyloss.SmoothAPLoss(num_classes=4, queue_size=16,
                                                    temperature=0.1), "class"),
    ("RecallAtQuantileLoss", lambda: proxyloss.RecallAtQuantileLoss(
        num_classes=4, quantile=0.2, queue_size=16, temperature=0.1), "class"),
    ("FairLoss", lambda: proxyloss.FairLoss(smooth_max_beta=20.0, scaling_factor=10.0), "class"),
    ("SoftmaxFocalLoss", lambda: proxyloss.SoftmaxFocalLoss(alpha=[0.2, 0.3, 0.4, 0.1]),
     "class"),
    ("SigmoidFocalLoss", lambda: proxyloss.SigmoidFocalLoss(alpha=0.25, gamma=2.0), "onehot"),
]


@pytest.mark.parametrize("name,make,target_kind", AUTOCAST_LOSSES,
                         ids=[name for name, _, _ in AUTOCAST_LOSSES])
def test_bfloat16_logits_from_autocast_equal_their_float32_values(name, make, target_kind):
    """A Linear layer under torch.autocast("cpu", bfloat16) gives bf16 logits;
    ours compute in float32 from them. The loss returned for bf16 logits
    is bf16 (ours follow the logits' dtype), so it equals the float32 loss of
    the same logits (cast to float32, which is exact) up to one rounding of
    the result to bf16 (relative 2^-8); the same for the logits' gradient.
    The queue (float32 buffers) holds the bf16 values exactly."""
    torch.manual_seed(5)
    model = nn.Linear(6, 4)
    bf16_loss, f32_loss = make(), make()
    bf16_ulp = dict(rtol=2 ** -8, atol=1e-6)
    for index in range(4):
        x = torch.randn(24, 6)
        targets = torch.randint(0, 4, (24,))
        target = F.one_hot(targets, 4).float() if target_kind == "onehot" else targets
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
            assert logits.dtype == torch.bfloat16
            logits.retain_grad()
            loss = bf16_loss(logits, target)
        assert loss.dtype == torch.bfloat16, f"{name} returns {loss.dtype}"
        as_float = logits.detach().float().requires_grad_(True)
        want = f32_loss(as_float, target)
        assert want.dtype == torch.float32
        torch.testing.assert_close(loss.float(), want, **bf16_ulp, msg=f"{name} step {index}")
        model.zero_grad()
        loss.backward()
        want.backward()
        assert logits.grad.dtype == torch.bfloat16
        torch.testing.assert_close(logits.grad.float(), as_float.grad, **bf16_ulp,
                                   msg=f"{name} gradient, step {index}")
        assert model.weight.grad.dtype == torch.float32
        assert bool(torch.isfinite(model.weight.grad).all())
        if hasattr(bf16_loss, "_q_logits"):
            assert bf16_loss._q_logits.dtype == torch.float32
            assert torch.equal(bf16_loss._q_logits, f32_loss._q_logits)
            assert torch.equal(bf16_loss._q_ptr, f32_loss._q_ptr)


def test_bfloat16_fairloss_equals_the_reference_on_the_float32_values():
    """pytorch-fairloss 0.1.1 itself fails on bf16 logits (float32 matmul);
    ours computes in float32, so its bf16 result is the reference's float32
    loss of the same values, rounded once."""
    torch.manual_seed(6)
    logits = torch.randn(16, 5).bfloat16()
    targets = torch.randint(0, 5, (16,))
    got = proxyloss.FairLoss()(logits, targets)
    want = fairloss.FairLoss()(logits.float(), targets)
    torch.testing.assert_close(got.float(), want, rtol=2 ** -8, atol=1e-6)


# --- a PyTorch-Lightning-style loop ------------------------------------------------

class LightningModuleStandIn(nn.Module):
    """What the seed README's snippet uses of pl.LightningModule:
    current_epoch, global_step and log()."""

    def __init__(self):
        super().__init__()
        self.current_epoch = 0
        self.global_step = 0
        self.logged = []

    def log(self, name, value):
        self.logged.append((self.global_step, name, float(value)))


def make_lightning_model(losses, main):
    class MyModel(LightningModuleStandIn):
        def __init__(self):
            super().__init__()
            torch.manual_seed(7)
            self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 10)).double()
            if main == "ap":
                main_loss = losses.SmoothAPLoss(num_classes=10, queue_size=64)
            else:
                main_loss = losses.RecallAtQuantileLoss(num_classes=10, quantile=0.1,
                                                        queue_size=64)
            self.loss_fn = losses.LossWarmupWrapper(
                warmup_loss=nn.CrossEntropyLoss(),
                main_loss=main_loss,
                warmup_epochs=2,
                blend_epochs=2,
                temp_start=0.5,
                temp_end=0.05,
                temp_decay_steps=10,
            )

        # The hooks exactly as in the seed README.
        def on_train_epoch_start(self):
            self.loss_fn.on_train_epoch_start(self.current_epoch)

        def on_train_batch_start(self, batch, batch_idx):
            self.loss_fn.on_train_batch_start(self.global_step)

        def training_step(self, batch, batch_idx):
            features, targets = batch
            logits = self.net(features)
            loss = self.loss_fn(logits, targets)
            self.log("train/loss", loss)
            self.log("train/ap_weight", self.loss_fn.ap_weight)
            self.log("train/in_warmup", float(self.loss_fn.in_warmup))
            if (t := self.loss_fn.current_temperature) is not None:
                self.log("train/temperature", t)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    return MyModel()


def fake_fit(module, loader, max_epochs):
    """Lightning's order: on_train_epoch_start, then per batch
    on_train_batch_start, training_step, backward, optimizer step, and
    global_step += 1 (after the step)."""
    optimizer = module.configure_optimizers()
    module.train()
    for epoch in range(max_epochs):
        module.current_epoch = epoch
        module.on_train_epoch_start()
        for batch_idx, batch in enumerate(loader):
            module.on_train_batch_start(batch, batch_idx)
            loss = module.training_step(batch, batch_idx)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            module.global_step += 1


@pytest.mark.parametrize("main", ["ap", "recall"])
def test_a_lightning_style_loop_trains_as_with_the_seed(main):
    generator = torch.Generator().manual_seed(8)
    loader = [(torch.randn(32, 6, generator=generator, dtype=torch.float64),
               torch.randint(0, 10, (32,), generator=generator)) for _ in range(4)]
    ours, seed = make_lightning_model(proxyloss, main), make_lightning_model(proxy_losses, main)
    fake_fit(ours, loader, max_epochs=6)
    fake_fit(seed, loader, max_epochs=6)
    assert [(s, n) for s, n, _ in ours.logged] == [(s, n) for s, n, _ in seed.logged]
    got = torch.tensor([v for _, _, v in ours.logged], dtype=torch.float64)
    want = torch.tensor([v for _, _, v in seed.logged], dtype=torch.float64)
    assert_close(got, want, torch.float64, "logged values")
    ours_state = ours.state_dict()
    assert set(ours_state) == set(seed.state_dict()) | {
        "loss_fn._extra_state", "loss_fn.main_loss._q_weight"}
    for name, want in seed.state_dict().items():
        if want.is_floating_point():
            assert_close(ours_state[name], want, torch.float64, name)
        else:
            assert torch.equal(ours_state[name], want), name
    weights = sorted({v for _, n, v in ours.logged if n == "train/ap_weight"})
    assert weights == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    temperatures = [v for _, n, v in ours.logged if n == "train/temperature"]
    assert temperatures[-1] == pytest.approx(0.05)
