"""Every Python usage snippet of the seeds' READMEs (the spec pages
seed-proxy-losses-0.1.3.md and seed-pytorch-fairloss-0.1.1.md), copied here
as written with only the import changed to proxyloss, runs on proxyloss;
and, with the import changed back, on the seed package with the same
random numbers, so ours must also give the seed's numbers (float32: 2e-5).
The spec pages are not read at test time (CI has no ../shared): the snippet
texts below are copies.

The successor's page (successor-imbalanced-losses-0.6.0.md) has no code
block, only inline signatures; the ones proxyloss implements are
constructed in the last test.

Each snippet runs with exec() under its own file name (registered with
linecache, so a traceback shows the snippet's line). Names a snippet uses
without defining them (torch, nn, pl, self, C) are given in its namespace,
each with a comment saying why.

Environment: PROXYLOSS_LIBRARY and PYTHONPATH (python/) when run from the
build tree, or an installed proxyloss.
"""
import linecache
import types

import pytest
import torch
from torch import nn

import proxyloss

# --- seed-proxy-losses-0.1.3.md, "## Usage" ---------------------------------------

USAGE = '''\
from proxyloss import SmoothAPLoss
from proxyloss import RecallAtQuantileLoss

# Multi-class AP loss
loss_fn = SmoothAPLoss(num_classes=4, queue_size=1024, temperature=0.01)
logits  = torch.randn(32, 4)   # [N, C] raw logits
targets = torch.randint(0, 4, (32,))  # [N] integer class labels
loss = loss_fn(logits, targets)
loss.backward()

# Recall at top-0.5%
loss_fn = RecallAtQuantileLoss(num_classes=4, quantile=0.005, queue_size=1024)
loss = loss_fn(logits, targets)
loss.backward()

# Binary classification
loss_fn = SmoothAPLoss(num_classes=1, queue_size=256)
logits  = torch.randn(32, 1)
targets = torch.randint(0, 2, (32,))  # {0, 1}
loss = loss_fn(logits, targets)

# Per-class logging (e.g. PyTorch Lightning)
loss, per_class, valid = loss_fn(logits, targets, return_per_class=True)
for c in valid.nonzero(as_tuple=True)[0].tolist():
    self.log(f"train/ap_loss_class_{c}", per_class[c])

# Seq2seq: flatten upstream
logits  = logits.view(-1, C)
targets = targets.view(-1)
loss = loss_fn(logits, targets)

# Reset queue between training and validation
loss_fn.reset_queue()
'''

# --- seed-proxy-losses-0.1.3.md, "### Usage (PyTorch Lightning)" ------------------

LIGHTNING = '''\
from proxyloss import SmoothAPLoss
from proxyloss import LossWarmupWrapper

class MyModel(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.loss_fn = LossWarmupWrapper(
            warmup_loss=nn.CrossEntropyLoss(),
            main_loss=SmoothAPLoss(num_classes=10, queue_size=1024),
            warmup_epochs=5,
            blend_epochs=2,        # gradual transition
            temp_start=0.5,        # soft at switch — stable gradients
            temp_end=0.01,         # sharp after schedule — closer to true rank
            temp_decay_steps=50_000,
        )

    def on_train_epoch_start(self):
        self.loss_fn.on_train_epoch_start(self.current_epoch)

    def on_train_batch_start(self, batch, batch_idx):
        self.loss_fn.on_train_batch_start(self.global_step)

    def training_step(self, batch, batch_idx):
        logits, targets = batch
        loss = self.loss_fn(logits, targets)
        self.log("train/loss", loss)
        self.log("train/ap_weight", self.loss_fn.ap_weight)
        if (t := self.loss_fn.current_temperature) is not None:
            self.log("train/temperature", t)
        return loss
'''

# --- seed-pytorch-fairloss-0.1.1.md, "## Quick start" -----------------------------

FAIRLOSS_QUICK_START = '''\
import torch
import torch.nn as nn
import torch.optim as optim
from proxyloss import FairLoss

model = nn.Linear(784, 10)
criterion = FairLoss()
optimizer = optim.Adam(model.parameters(), lr=1e-3)

x = torch.randn(64, 784)
y = torch.randint(0, 10, (64,))

logits = model(x)
loss = criterion(logits, y)

optimizer.zero_grad()
loss.backward()
optimizer.step()
'''


def as_the_seed(source, package):
    """The snippet with its import changed back to the seed package."""
    assert "from proxyloss import" in source
    return source.replace("from proxyloss import", f"from {package} import")


def run(source, name, namespace):
    filename = f"<snippet {name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    return namespace


def sections(source):
    """The snippet's paragraphs (split at blank lines), run one after the
    other in one namespace, so the namespaces can be compared after each."""
    return [part for part in source.split("\n\n") if part.strip()]


class LoggingSelf:
    """`self` of the per-class logging lines: the LightningModule whose
    self.log the README calls."""

    def __init__(self):
        self.logged = []

    def log(self, name, value):
        self.logged.append((name, float(value)))


def assert_same_values(got, want, where):
    if isinstance(got, torch.Tensor):
        assert isinstance(want, torch.Tensor) and got.dtype == want.dtype, where
        torch.testing.assert_close(got.detach(), want.detach(), rtol=2e-5, atol=2e-5,
                                   equal_nan=True, msg=where)
        if got.is_leaf and (got.grad is not None or want.grad is not None):
            torch.testing.assert_close(got.grad, want.grad, rtol=2e-5, atol=2e-5, msg=where)
    elif isinstance(got, tuple):
        for g, w in zip(got, want, strict=True):
            assert_same_values(g, w, where)
    elif isinstance(got, nn.Module):
        # Every buffer of the seed's; ours may add the successor's _q_weight.
        want_state = want.state_dict()
        for key, w in want_state.items():
            assert_same_values(got.state_dict()[key], w, f"{where}: {key}")
        assert set(got.state_dict()) - set(want_state) <= {
            key for key in got.state_dict() if key.endswith("_q_weight")}, where


def compare_namespaces(ours, seed, where):
    for name, value in ours.items():
        if name.startswith("__") or isinstance(value, types.ModuleType) or callable(value) \
                and not isinstance(value, nn.Module):
            continue
        assert name in seed, f"{where}: {name}"
        assert_same_values(value, seed[name], f"{where}: {name}")


# --- the Usage snippet ------------------------------------------------------------

def usage_namespace():
    return {
        "torch": torch,  # the snippet uses torch without importing it
        # The per-class logging lines run in a LightningModule's method:
        "self": LoggingSelf(),
        # The seq2seq lines flatten to [N, C] with the C of the loss_fn in use
        # at that point, the binary SmoothAPLoss (num_classes=1).
        "C": 1,
    }


def test_the_usage_snippet_as_written_stops_at_the_first_backward_as_in_the_seed():
    """As written, the README's logits do not require grad, so the first
    loss.backward() raises, in the seed as in ours (a README defect: the
    loss is right, there is just no graph to backpropagate)."""
    for source in (USAGE, as_the_seed(USAGE, "proxy_losses")):
        if "proxy_losses" in source:
            pytest.importorskip("proxy_losses")
        torch.manual_seed(0)
        with pytest.raises(RuntimeError, match="does not require grad") as error:
            run(source, "Usage", usage_namespace())
        in_snippet = [entry for entry in error.traceback
                      if str(entry.path).startswith("<snippet")]
        assert in_snippet[-1].lineno + 1 == 9  # the line `loss.backward()`


# The one change: logits that require grad, so that loss.backward() works.
USAGE_WITH_GRAD = USAGE.replace("logits  = torch.randn(32, 4)   # [N, C] raw logits",
                                "logits  = torch.randn(32, 4, requires_grad=True)")
assert USAGE_WITH_GRAD.count("requires_grad=True") == 1


def test_the_usage_snippet_runs_and_gives_the_seed_numbers():
    proxy_losses = pytest.importorskip("proxy_losses")
    ours, seed = usage_namespace(), usage_namespace()
    ours_parts = sections(USAGE_WITH_GRAD)
    seed_parts = sections(as_the_seed(USAGE_WITH_GRAD, "proxy_losses"))
    torch.manual_seed(0)
    ours_state = torch.get_rng_state()
    seed_state = ours_state
    for index, (ours_part, seed_part) in enumerate(zip(ours_parts, seed_parts, strict=True)):
        # The same random numbers for both: each section from the same RNG state.
        torch.set_rng_state(ours_state)
        run(ours_part, f"Usage section {index}", ours)
        ours_state = torch.get_rng_state()
        torch.set_rng_state(seed_state)
        run(seed_part, f"Usage section {index} (seed)", seed)
        seed_state = torch.get_rng_state()
        compare_namespaces(ours, seed, f"after section {index}: {ours_part.splitlines()[0]}")
    assert isinstance(seed["loss_fn"], proxy_losses.SmoothAPLoss)
    assert isinstance(ours["loss_fn"], proxyloss.SmoothAPLoss)
    assert [name for name, _ in ours["self"].logged] == [n for n, _ in seed["self"].logged]
    assert [v for _, v in ours["self"].logged] == pytest.approx(
        [v for _, v in seed["self"].logged])
    assert [name for name, _ in ours["self"].logged] == ["train/ap_loss_class_0"]
    assert ours["logits"].shape == (32, 1) and ours["loss"].ndim == 0
    assert int(ours["loss_fn"]._q_ptr) == 0 and bool((ours["loss_fn"]._q_targets == -100).all())


# --- the Lightning snippet --------------------------------------------------------

class LightningModuleStandIn(nn.Module):
    """pl.LightningModule as far as the snippet uses it: current_epoch,
    global_step (set by the trainer) and self.log."""

    def __init__(self):
        super().__init__()
        self.current_epoch = 0
        self.global_step = 0
        self.logged = []

    def log(self, name, value):
        self.logged.append((self.global_step, name, float(value)))


def lightning_namespace():
    return {
        # Lightning is not installed: pl.LightningModule is a stand-in.
        "pl": types.SimpleNamespace(LightningModule=LightningModuleStandIn),
        "nn": nn,  # the snippet uses nn without importing it
    }


def fake_fit(model, batches, max_epochs):
    """Lightning's hook order; the batches are (logits, targets), as the
    snippet's training_step unpacks them (a model upstream gave the logits:
    here leaf tensors whose gradients are compared)."""
    for epoch in range(max_epochs):
        model.current_epoch = epoch
        model.on_train_epoch_start()
        for batch_idx, batch in enumerate(batches[epoch]):
            model.on_train_batch_start(batch, batch_idx)
            loss = model.training_step(batch, batch_idx)
            loss.backward()
            model.global_step += 1


def lightning_batches(seed, epochs, per_epoch):
    generator = torch.Generator().manual_seed(seed)
    return [[(torch.randn(32, 10, generator=generator).requires_grad_(True),
              torch.randint(0, 10, (32,), generator=generator)) for _ in range(per_epoch)]
            for _ in range(epochs)]


def test_the_lightning_snippet_runs_through_warmup_blend_and_main_as_the_seed():
    pytest.importorskip("proxy_losses")
    epochs = 8  # warmup_epochs=5, blend_epochs=2: pure SmoothAP from epoch 7
    ours_model = run(LIGHTNING, "Lightning", lightning_namespace())["MyModel"]()
    seed_model = run(as_the_seed(LIGHTNING, "proxy_losses"), "Lightning (seed)",
                     lightning_namespace())["MyModel"]()
    ours_batches = lightning_batches(1, epochs, 2)
    seed_batches = lightning_batches(1, epochs, 2)
    fake_fit(ours_model, ours_batches, epochs)
    fake_fit(seed_model, seed_batches, epochs)
    assert [entry[:2] for entry in ours_model.logged] == [entry[:2] for entry in seed_model.logged]
    got = torch.tensor([entry[2] for entry in ours_model.logged])
    want = torch.tensor([entry[2] for entry in seed_model.logged])
    torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5)
    for epoch in range(epochs):
        for (x, _), (y, _) in zip(ours_batches[epoch], seed_batches[epoch]):
            torch.testing.assert_close(x.grad, y.grad, rtol=2e-5, atol=2e-5)
    weights = [value for _, name, value in ours_model.logged if name == "train/ap_weight"]
    assert weights == [0.0] * 10 + [1 / 3] * 2 + [2 / 3] * 2 + [1.0] * 2
    temperatures = [value for _, name, value in ours_model.logged if name == "train/temperature"]
    # SmoothAPLoss's own 0.01 during warmup, then temp_start at the switch
    # (global step 10) decaying over 50_000 steps.
    assert temperatures[:10] == [0.01] * 10
    assert temperatures[10] == 0.5
    assert temperatures[-1] == pytest.approx(0.5 * (0.01 / 0.5) ** (5 / 50_000))


# --- the FairLoss quick start ------------------------------------------------------

def test_the_fairloss_quick_start_runs_and_gives_the_reference_numbers():
    pytest.importorskip("fairloss")
    torch.manual_seed(0)
    ours = run(FAIRLOSS_QUICK_START, "FairLoss quick start", {})
    torch.manual_seed(0)
    reference = run(as_the_seed(FAIRLOSS_QUICK_START, "fairloss"),
                    "FairLoss quick start (fairloss)", {})
    assert type(ours["criterion"]) is proxyloss.FairLoss
    assert ours["loss"].ndim == 0
    torch.testing.assert_close(ours["loss"], reference["loss"], rtol=2e-5, atol=2e-5)
    for name in ("weight", "bias"):
        torch.testing.assert_close(getattr(ours["model"], name),
                                   getattr(reference["model"], name), rtol=2e-5, atol=2e-5)


def test_the_fairloss_readme_example_numbers():
    """"## The problem": examples/difference.py's output for the README's two
    rows (the script itself is not in the README; its printed numbers are)."""
    logits = torch.tensor([[0.34, 0.33, 0.33], [0.49, 0.51, 0.00]])
    targets = torch.tensor([0, 0])
    cross_entropy = nn.CrossEntropyLoss(reduction="none")(logits, targets)
    fair = proxyloss.FairLoss(reduction="none")(logits, targets)
    torch.testing.assert_close(cross_entropy, torch.tensor([1.0920, 0.9681]), rtol=0, atol=5e-5)
    torch.testing.assert_close(fair, torch.tensor([1.0920, 1.3014]), rtol=0, atol=5e-5)
    assert fair[0] < fair[1] and cross_entropy[1] < cross_entropy[0]


# --- the successor page: inline signatures only ------------------------------------

def test_the_successor_pages_inline_signatures_that_proxyloss_implements():
    """successor-imbalanced-losses-0.6.0.md has no code block; its inline
    signatures of what proxyloss implements construct and run (sample_weight,
    iid_mask and PAUCAtBudgetLoss are not in proxyloss)."""
    torch.manual_seed(2)
    logits, targets = torch.randn(12, 3), torch.randint(0, 3, (12,))
    sigmoid = proxyloss.SigmoidFocalLoss(alpha=0.25, gamma=2.0, reduction="mean",
                                         gather_distributed=None)
    assert sigmoid(logits, (torch.rand(12, 3) > 0.5).float()).ndim == 0
    assert proxyloss.SigmoidFocalLoss(alpha=-1)(logits, torch.zeros(12, 3)).ndim == 0
    softmax = proxyloss.SoftmaxFocalLoss(alpha=None, gamma=2.0, reduction="mean_positive",
                                         label_smoothing=0.0, ignore_index=-100,
                                         background_class=0, gather_distributed=None)
    assert softmax(logits, targets).ndim == 0
    spatial = proxyloss.SoftmaxFocalLoss(reduction="none")(torch.randn(2, 3, 4, 5),
                                                           torch.randint(0, 3, (2, 4, 5)))
    assert spatial.shape == (2, 4, 5)
    for loss in (proxyloss.SmoothAPLoss(num_classes=3, max_pool_size=None),
                 proxyloss.RecallAtQuantileLoss(num_classes=3, max_pool_size=None)):
        assert loss(logits, targets, return_per_class=True)[1].shape == (3,)
    wrapper = proxyloss.LossWarmupWrapper(nn.CrossEntropyLoss(),
                                          proxyloss.SmoothAPLoss(num_classes=3),
                                          warmup_steps=4, blend_steps=2, final_main_weight=0.5)
    assert (wrapper.warmup_epochs, wrapper.temp_start, wrapper.temp_end,
            wrapper.temp_decay_steps) == (0, 0.05, 0.005, 10_000)
    wrapper.on_train_batch_start(5)
    assert wrapper.main_weight == pytest.approx((5 - 4 + 1) / (2 + 1) * 0.5)
