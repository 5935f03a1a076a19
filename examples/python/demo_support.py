"""What the Python demos share: flags, the synthetic data, the model, the
training loop, the metrics, and the CSV / PNG output.

The demos (toy_demo.py, compare_demo.py, fairloss_demo.py) are the Python
counterparts of examples/*.cpp and of the seed packages' examples;
ddp_train.py is compare_demo.py on several processes. Each runs
either on proxyloss (the default) or, with ``--implementation seed``, on the
installed seed packages -- ``proxy_losses`` (proxy-losses 0.1.3) for
SmoothAPLoss, RecallAtQuantileLoss and LossWarmupWrapper, ``fairloss``
(pytorch-fairloss 0.1.1) for FairLoss -- with everything else (data, initial
weights, batch order, optimiser) the same, so the two can be compared number
by number and by wall time.

Not a module of the library: it lives beside the demos, which import it as
``demo_support`` (Python puts a script's own folder first on sys.path).
"""
from __future__ import annotations

import argparse
import csv
import importlib
import math
import os
import pathlib
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

# --------------------------------------------------------------------------
# Implementations

# For each role, the module that provides the losses under each
# implementation. proxyloss has the seeds' class names and signatures.
_MODULES = {
    "ranking": {"proxyloss": "proxyloss", "seed": "proxy_losses"},
    "fairloss": {"proxyloss": "proxyloss", "seed": "fairloss"},
}
_NEEDS = {
    "ranking": ("SmoothAPLoss", "RecallAtQuantileLoss", "LossWarmupWrapper"),
    "fairloss": ("FairLoss",),
}


def load_losses(implementation: str, role: str):
    """The module whose loss classes a demo uses: ``proxyloss``, or the seed
    package for `role` ("ranking": proxy_losses, "fairloss": fairloss).
    Exits with a readable message when it is missing or incomplete."""
    name = _MODULES[role][implementation]
    try:
        module = importlib.import_module(name)
    except Exception as error:  # ImportError, or proxyloss's library failing to load
        raise SystemExit(f"--implementation {implementation}: cannot import {name}: {error}")
    missing = [cls for cls in _NEEDS[role] if not hasattr(module, cls)]
    if missing:
        raise SystemExit(f"--implementation {implementation}: {name} "
                         f"({getattr(module, '__file__', '?')}) has no {', '.join(missing)}")
    return module


def describe_implementation(module) -> str:
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            from importlib import metadata

            dist = {"proxy_losses": "proxy-losses", "fairloss": "pytorch-fairloss"}
            version = metadata.version(dist.get(module.__name__, module.__name__))
        except Exception:
            version = "?"
    return f"{module.__name__} {version} ({os.path.dirname(module.__file__)})"


# --------------------------------------------------------------------------
# Flags


def checked(kind, test, what):
    def parse(text):
        value = kind(text)
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


positive_int = checked(int, lambda v: v > 0, "a positive integer")
nonnegative_int = checked(int, lambda v: v >= 0, "an integer >= 0")
positive_float = checked(float, lambda v: v > 0 and math.isfinite(v), "a positive number")
nonnegative_float = checked(float, lambda v: v >= 0 and math.isfinite(v), "a number >= 0")
unit_float = checked(float, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
rate_float = checked(float, lambda v: 1e-6 <= v <= 0.5, "in [1e-6, 0.5]")
rows_int = checked(int, lambda v: 100 <= v <= 100_000_000, "in [100, 1e8]")


def new_parser(doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the demo's docstring, showing defaults."""

    class Formatter(argparse.RawDescriptionHelpFormatter,
                    argparse.ArgumentDefaultsHelpFormatter):
        pass

    return argparse.ArgumentParser(description=doc, formatter_class=Formatter)


def add_common_flags(parser: argparse.ArgumentParser, *, rows: int, epochs: int,
                     batch_size: int, lr: float = 1e-3, seed: int = 42) -> None:
    """Flags every demo has: data size, epochs, optimisation, seed, threads,
    output directory and the implementation of the losses."""
    parser.add_argument("--n-samples", "--rows", dest="n_samples", type=rows_int,
                        default=rows, help="rows generated (75 %% training, 25 %% validation)")
    parser.add_argument("--total-epochs", "--epochs", dest="total_epochs", type=positive_int,
                        default=epochs, help="training epochs")
    parser.add_argument("--batch-size", type=positive_int, default=batch_size,
                        help="rows per batch")
    parser.add_argument("--lr", type=positive_float, default=lr, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=seed,
                        help="seed of the data, the initial weights and the batch order")
    parser.add_argument("--threads", type=nonnegative_int, default=0,
                        help="torch intra-op threads (0: OMP_NUM_THREADS, else all cores)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="directory for CSV files and PNG plots (created if needed)")
    parser.add_argument("--implementation", choices=("proxyloss", "seed"),
                        default="proxyloss",
                        help="losses from proxyloss, or from the installed seed packages "
                             "(proxy_losses / fairloss)")


def add_ranking_flags(parser: argparse.ArgumentParser) -> None:
    """The seed's flags of toy_demo.py / compare_demo.py, with the C++ demos'
    defaults (examples/support/ranking_demo.h)."""
    add_common_flags(parser, rows=60_000, epochs=15, batch_size=512)
    parser.add_argument("--pos-rate", type=rate_float, default=0.005,
                        help="share of positives before the label flips")
    parser.add_argument("--warmup-epochs", type=nonnegative_int, default=3,
                        help="epochs of BCE warmup")
    parser.add_argument("--blend-epochs", type=nonnegative_int, default=2,
                        help="epochs of linear blend from BCE to the main loss (0: hard switch)")
    parser.add_argument("--queue-size", type=nonnegative_int, default=2048,
                        help="rows of the main loss's memory queue (0: none)")
    parser.add_argument("--temp-start", type=positive_float, default=0.35,
                        help="main loss temperature at the switch")
    parser.add_argument("--temp-end", type=positive_float, default=0.01,
                        help="main loss temperature after the decay")
    parser.add_argument("--loss", choices=("ap", "smoothap", "recall"), default="ap",
                        help="main loss: SmoothAPLoss (ap, alias smoothap) or "
                             "RecallAtQuantileLoss (recall)")
    parser.add_argument("--quantile", type=unit_float, default=0.0,
                        help="RecallAtQuantileLoss's quantile (0: --pos-rate)")
    parser.add_argument("--decay-steps", type=nonnegative_int, default=0,
                        help="temperature decay steps (0: the main phase's steps)")


def configure_threads(requested: int) -> str:
    """Sets torch's intra-op threads; returns a line saying how many and why."""
    threads, source = requested, "--threads"
    if threads <= 0:
        try:
            threads, source = int(os.environ.get("OMP_NUM_THREADS", "0")), "OMP_NUM_THREADS"
        except ValueError:
            threads = 0
    if threads <= 0:
        threads, source = os.cpu_count() or 1, "all cores"
    torch.set_num_threads(threads)
    return f"threads: {threads} ({source}); torch {torch.__version__}"


# --------------------------------------------------------------------------
# Data and model


@dataclass
class Dataset:
    x: torch.Tensor  # [N, F] float32
    y: torch.Tensor  # [N] int64

    @property
    def rows(self) -> int:
        return int(self.x.shape[0])


def make_classification_split(train_share: float = 0.75, **kwargs) -> tuple[Dataset, Dataset]:
    """scikit-learn's make_classification, split in order into training
    (the first `train_share` of the rows) and validation sets."""
    from sklearn.datasets import make_classification

    x, y = make_classification(**kwargs)
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.long)
    cut = int(train_share * x.shape[0])
    return Dataset(x[:cut], y[:cut]), Dataset(x[cut:], y[cut:])


def make_ranking_data(args) -> tuple[Dataset, Dataset]:
    """The imbalanced binary problem of the C++ ranking demos: 20 features
    (10 informative, 2 redundant), 3 clusters per class, a share --pos-rate of
    positives, 5 % label flips, class_sep 0.8."""
    return make_classification_split(
        n_samples=args.n_samples, n_features=20, n_informative=10, n_redundant=2,
        n_clusters_per_class=3, weights=[1.0 - args.pos_rate, args.pos_rate],
        flip_y=0.05, class_sep=0.8, random_state=args.seed)


def describe_ranking_data(train: Dataset, validation: Dataset) -> str:
    return (f"data: {train.x.shape[1]} features; training {train.rows} rows "
            f"({int(train.y.sum())} positive), validation {validation.rows} rows "
            f"({int(validation.y.sum())} positive)")


def start_ranking_demo(description: str, argv=None):
    """The ranking demos' common start: parse the flags, set the threads,
    load the losses of --implementation and make the data, printing each.
    Returns (args, losses module, train, validation, start time)."""
    parser = new_parser(description)
    add_ranking_flags(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(configure_threads(args.threads))
    losses = load_losses(args.implementation, "ranking")
    print(f"losses: {describe_implementation(losses)}")
    train, validation = make_ranking_data(args)
    print(describe_ranking_data(train, validation))
    return args, losses, train, validation, started


def make_mlp(widths: Sequence[int], seed: int) -> nn.Sequential:
    """Linear layers of the given widths with ReLUs between them, initialised
    from torch's global generator seeded with `seed` (the same weights for
    every run built with the same seed)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------
# Training


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer,
                loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                data: Dataset, batch_size: int, generator: torch.Generator,
                global_step: int,
                on_batch_start: Callable[[int], None] | None = None,
                shard: Callable[[torch.Tensor], torch.Tensor] | None = None
                ) -> tuple[float, int]:
    """One pass over `data` in an order drawn from `generator`, in batches of
    `batch_size` rows, of which this process trains on `shard(rows)` (all of
    them without `shard`). Returns the mean training loss (of this process's
    loss values) and the global step after the epoch."""
    model.train()
    order = torch.randperm(data.rows, generator=generator)
    total, batches = 0.0, 0
    for start in range(0, data.rows, batch_size):
        rows = order[start:start + batch_size]
        if shard is not None:
            rows = shard(rows)
        if on_batch_start is not None:
            on_batch_start(global_step)
        loss = loss_fn(model(data.x[rows]), data.y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(loss.item())
        batches += 1
        global_step += 1
    return (total / batches if batches else 0.0), global_step


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    try:
        return model(x)
    finally:
        model.train()


def seeded_generator(seed: int) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


class BCEWarmupLoss(nn.Module):
    """BCE-with-logits on [N, 1] logits and the integer 0/1 targets the
    ranking losses take (the wrapper hands both losses the same targets)."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(
            logits.reshape(-1), targets.reshape(-1).to(logits.dtype))


@dataclass
class Parallel:
    """How train_ranking_model shares a run between processes; the defaults
    are one process. examples/python/ddp_train.py sets them for
    DistributedDataParallel: `wrap` returns the module that trains (a DDP
    over the model; the model itself is what is scored), `shard` picks this
    process's rows of every batch, `warmup_loss` makes the warmup loss,
    `mean_loss` turns this process's mean training loss of an epoch into
    the mean over processes, and only where `evaluate` is true is the model
    scored on validation and on_epoch called."""
    wrap: Callable[[nn.Module], nn.Module] | None = None
    shard: Callable[[torch.Tensor], torch.Tensor] | None = None
    warmup_loss: Callable[[], nn.Module] = BCEWarmupLoss
    mean_loss: Callable[[float], float] | None = None
    evaluate: bool = True


def main_loss_label(args) -> str:
    return "RECALL" if args.loss == "recall" else "AP"


def steps_per_epoch(args, train_rows: int) -> int:
    return (train_rows + args.batch_size - 1) // args.batch_size


@dataclass
class Schedule:
    """BCE for warmup_epochs, a linear blend over blend_epochs, then the main
    loss; its temperature decays over decay_steps from the switch."""
    warmup_epochs: int
    blend_epochs: int
    decay_steps: int


def make_main_loss(losses, args) -> nn.Module:
    if args.loss == "recall":
        quantile = args.quantile if args.quantile > 0 else args.pos_rate
        return losses.RecallAtQuantileLoss(num_classes=1, quantile=quantile,
                                           queue_size=args.queue_size,
                                           temperature=args.temp_start)
    return losses.SmoothAPLoss(num_classes=1, queue_size=args.queue_size,
                               temperature=args.temp_start)


def make_loss_schedule(losses, args, schedule: Schedule,
                       warmup_loss: nn.Module | None = None) -> nn.Module:
    """`losses`.LossWarmupWrapper: BCE (or `warmup_loss`), then the main loss
    (binary mode)."""
    decay_steps = args.decay_steps if args.decay_steps > 0 else schedule.decay_steps
    return losses.LossWarmupWrapper(
        warmup_loss=BCEWarmupLoss() if warmup_loss is None else warmup_loss,
        main_loss=make_main_loss(losses, args),
        warmup_epochs=schedule.warmup_epochs,
        temp_start=args.temp_start,
        temp_end=args.temp_end,
        temp_decay_steps=max(1, decay_steps),
        blend_epochs=schedule.blend_epochs,
    )


def wrapper_main_weight(wrapper) -> float:
    """The main loss's weight: the seed's ``ap_weight`` (its successor calls
    it ``main_weight``)."""
    for name in ("ap_weight", "main_weight"):
        value = getattr(wrapper, name, None)
        if value is not None:
            return float(value() if callable(value) else value)
    return float("nan")


def wrapper_temperature(wrapper, fallback: float) -> float:
    value = getattr(wrapper, "current_temperature", None)
    if callable(value):
        value = value()
    return fallback if value is None else float(value)


@dataclass
class EpochReport:
    epoch: int
    phase: str          # "warmup", "blend" or main_loss_label()
    main_weight: float  # of the main loss in the blend
    temperature: float  # the main loss's (temp_start until it starts)
    loss: float         # mean training loss over the epoch
    aucpr: float        # validation average precision
    seconds: float      # since the run started
    scores: torch.Tensor = field(repr=False)  # validation logits [N]


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """scikit-learn's average_precision_score. Scores are logits, in float64:
    they rank as sigmoid probabilities would, without float32 ties."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels.numpy(), scores.double().numpy()))


def train_ranking_model(losses, args, schedule: Schedule, model: nn.Module,
                        train: Dataset, validation: Dataset,
                        on_epoch: Callable[[EpochReport], None],
                        parallel: Parallel | None = None) -> None:
    """Trains `model` for args.total_epochs under `schedule` (Adam at
    args.lr, batches drawn from a generator seeded with args.seed, so every
    run sees the same batch order) and calls on_epoch after each epoch.
    `parallel`: see Parallel (one process by default)."""
    parallel = Parallel() if parallel is None else parallel
    started = time.perf_counter()
    loss_fn = make_loss_schedule(losses, args, schedule, parallel.warmup_loss())
    trained = model if parallel.wrap is None else parallel.wrap(model)
    optimizer = torch.optim.Adam(trained.parameters(), lr=args.lr)
    generator = seeded_generator(args.seed)
    global_step = 0
    for epoch in range(args.total_epochs):
        loss_fn.on_train_epoch_start(epoch)
        mean_loss, global_step = train_epoch(trained, optimizer, loss_fn, train,
                                             args.batch_size, generator, global_step,
                                             on_batch_start=loss_fn.on_train_batch_start,
                                             shard=parallel.shard)
        if parallel.mean_loss is not None:
            mean_loss = parallel.mean_loss(mean_loss)
        if not parallel.evaluate:
            continue
        phase = ("warmup" if loss_fn.in_warmup else
                 "blend" if loss_fn.in_blend else main_loss_label(args))
        scores = predict(model, validation.x).squeeze(1)
        on_epoch(EpochReport(
            epoch=epoch, phase=phase, main_weight=wrapper_main_weight(loss_fn),
            temperature=wrapper_temperature(loss_fn, args.temp_start), loss=mean_loss,
            aucpr=average_precision(scores, validation.y),
            seconds=time.perf_counter() - started, scores=scores))


# --------------------------------------------------------------------------
# Multi-class metrics (Ahmadian et al. 2025 for PBS and PLL)


def classification_scores(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """accuracy, macro-F1, penalized Brier score and penalized log loss of
    `logits` [N, C] against `targets` [N]. PBS = sum_j (q_j - y_j)^2 +
    (C-1)/C, PLL = -log q_y + log C, each penalty only where the argmax is
    wrong (a tie on the maximum counts as correct); means over rows."""
    from sklearn.metrics import f1_score

    logits = logits.double()
    classes = logits.shape[1]
    log_q = torch.log_softmax(logits, dim=1)
    q = log_q.exp()
    q_true = q.gather(1, targets[:, None]).squeeze(1)
    wrong = q_true < q.max(dim=1).values
    one_hot = nn.functional.one_hot(targets, classes).double()
    brier = ((q - one_hot) ** 2).sum(dim=1)
    log_loss = -log_q.gather(1, targets[:, None]).squeeze(1)
    predicted = logits.argmax(dim=1)
    return {
        "accuracy": float((predicted == targets).double().mean()),
        "macro_f1": float(f1_score(targets.numpy(), predicted.numpy(),
                                   labels=list(range(classes)), average="macro",
                                   zero_division=0)),
        "pbs": float((brier + wrong.double() * (classes - 1) / classes).mean()),
        "pll": float((log_loss + wrong.double() * math.log(classes)).mean()),
    }


# --------------------------------------------------------------------------
# Output


def output_dir(path: str) -> pathlib.Path:
    directory = pathlib.Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _cell(value) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def write_csv(path: pathlib.Path, columns: Sequence[str], rows: Iterable[Sequence]) -> pathlib.Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
    return path


@dataclass
class Series:
    x: Sequence[float]
    y: Sequence[float]
    label: str


def plot(path: pathlib.Path, title: str, x_label: str, y_label: str,
         series: Sequence[Series], *, points: bool = True) -> pathlib.Path:
    """One PNG with a line per series (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.5), dpi=100)
    for s in series:
        axes.plot(s.x, s.y, marker="o" if points else None, markersize=3, label=s.label)
    axes.set_title(title)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.grid(True, alpha=0.3)
    if series:
        axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def seconds_since(start: float) -> float:
    return time.perf_counter() - start

