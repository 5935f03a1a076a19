"""Cross-entropy vs FairLoss on a synthetic multi-class problem with label
noise (scikit-learn's make_classification, 5 classes, 20 % of the labels
replaced at random), trained one after the other from the same initial
weights and batch order. After each epoch every model is scored on the
validation set by accuracy, macro-F1, and the penalized scoring rules of
Ahmadian et al. (2025) that FairLoss is built after: the penalized Brier
score (PBS) and the penalized log loss (PLL), lower is better. The Python
counterpart of examples/fairloss_demo.cpp.

FairLoss adds to cross-entropy (2 sigmoid(k (smoothmax_beta(z) - z_y)) - 1) / C,
up to 1 / C for a wrong argmax. Two FairLoss arms are trained:
  FairLoss       the defaults, beta = k = 1000: the penalty is nearly a step,
                 with rare, large gradients near the decision boundary
  FairLoss soft  beta = k = --soft (10): a smooth penalty that pushes every
                 row near the boundary to the right side

usage:
  python examples/python/fairloss_demo.py                        5 classes, 20 % flips, 30 epochs
  python examples/python/fairloss_demo.py --flip-y 0.4           noisier labels
  python examples/python/fairloss_demo.py --soft 0               leave the soft arm out
  python examples/python/fairloss_demo.py --implementation seed  the seed's fairloss.FairLoss instead
  python examples/python/fairloss_demo.py --out results          CSV and PNG plots
"""
import sys
import time

import torch
from torch import nn

import demo_support as demo

METRICS = ("accuracy", "macro_f1", "pbs", "pll")


def parse_args(argv):
    parser = demo.new_parser(__doc__)
    demo.add_common_flags(parser, rows=20_000, epochs=30, batch_size=256)
    parser.add_argument("--classes", type=demo.checked(int, lambda v: 2 <= v <= 64,
                                                         "in [2, 64]"),
                        default=5, help="classes")
    parser.add_argument("--flip-y", type=demo.unit_float, default=0.2,
                        help="fraction of labels replaced by a random class (label noise)")
    parser.add_argument("--class-sep", type=demo.positive_float, default=1.0,
                        help="separation of the class clusters")
    parser.add_argument("--smooth-max-beta", type=demo.positive_float, default=1000.0,
                        help="FairLoss's smooth_max_beta")
    parser.add_argument("--scaling-factor", type=demo.nonnegative_float, default=1000.0,
                        help="FairLoss's scaling_factor")
    parser.add_argument("--soft", type=demo.nonnegative_float, default=10.0,
                        help="beta = k of the 'FairLoss soft' arm (0: leave the arm out)")
    return parser.parse_args(argv)


def run(name, loss_fn, model, args, train, validation):
    """Trains `model` with `loss_fn`; returns the per-epoch scores."""
    started = time.perf_counter()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = demo.seeded_generator(args.seed)
    history, global_step = [], 0
    for epoch in range(args.total_epochs):
        mean_loss, global_step = demo.train_epoch(model, optimizer, loss_fn, train,
                                                  args.batch_size, generator, global_step)
        scores = demo.classification_scores(demo.predict(model, validation.x), validation.y)
        scores["loss"] = mean_loss
        history.append(scores)
        print(f"  {name:<13} epoch {epoch + 1:3d}/{args.total_epochs}  loss {mean_loss:.4f}  "
              f"accuracy {scores['accuracy']:.4f}  macro-F1 {scores['macro_f1']:.4f}  "
              f"PBS {scores['pbs']:.4f}  PLL {scores['pll']:.4f}  "
              f"({demo.seconds_since(started):.1f} s)", flush=True)
    return history, demo.seconds_since(started)


def write_outputs(args, arms, histories):
    out = demo.output_dir(args.out)
    columns = ["epoch"] + [f"{prefix}_{metric}" for _, prefix, _ in arms
                           for metric in (*METRICS, "loss")]
    path = demo.write_csv(
        out / "fairloss_demo.csv", columns,
        [(epoch, *(h[epoch][m] for h in histories for m in (*METRICS, "loss")))
         for epoch in range(args.total_epochs)])
    epochs = list(range(args.total_epochs))

    def series(metric, label):
        return [demo.Series(epochs, [row[metric] for row in h], f"{name} {label}")
                for (name, _, _), h in zip(arms, histories)]

    suffix = f" ({args.implementation})"
    accuracy = demo.plot(out / "fairloss_demo_accuracy.png",
                         "Validation accuracy and macro-F1 by epoch (higher is better)" + suffix,
                         "epoch", "accuracy, macro-F1",
                         series("accuracy", "accuracy") + series("macro_f1", "macro-F1"))
    scoring = demo.plot(out / "fairloss_demo_scoring.png",
                        "Validation PBS and PLL by epoch (lower is better)" + suffix,
                        "epoch", "PBS, PLL", series("pbs", "PBS") + series("pll", "PLL"))
    print(f"\nCSV in {path}, plots {accuracy.name} and {scoring.name} in {out}")


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    print(demo.configure_threads(args.threads))
    losses = demo.load_losses(args.implementation, "fairloss")
    print(f"FairLoss: {demo.describe_implementation(losses)}")

    # 20 features (8 informative, 2 redundant), 2 clusters per class, balanced
    # classes; flip_y of the labels (in both splits) replaced at random.
    train, validation = demo.make_classification_split(
        n_samples=args.n_samples, n_features=20, n_informative=8, n_redundant=2,
        n_classes=args.classes, n_clusters_per_class=2, flip_y=args.flip_y,
        class_sep=args.class_sep, random_state=args.seed)
    print(f"data: {args.classes} classes, 20 features, {100 * args.flip_y:.0f} % labels "
          f"flipped; training {train.rows} rows, validation {validation.rows} rows")

    arms = [("cross-entropy", "ce", nn.CrossEntropyLoss()),
            ("FairLoss", "fair", losses.FairLoss(smooth_max_beta=args.smooth_max_beta,
                                                 scaling_factor=args.scaling_factor))]
    line = f"FairLoss: smooth_max_beta {args.smooth_max_beta:g}, " \
           f"scaling_factor {args.scaling_factor:g}"
    if args.soft > 0:
        arms.append(("FairLoss soft", "fair_soft",
                     losses.FairLoss(smooth_max_beta=args.soft, scaling_factor=args.soft)))
        line += f"; FairLoss soft: both {args.soft:g}"
    print(line + "\n")

    histories, seconds = [], []
    for name, _, loss_fn in arms:
        # The same initial weights for every arm: make_mlp seeds torch first.
        model = demo.make_mlp([train.x.shape[1], 64, args.classes], args.seed)
        history, wall = run(name, loss_fn, model, args, train, validation)
        histories.append(history)
        seconds.append(wall)

    if args.out:
        write_outputs(args, arms, histories)

    # Per epoch: accuracy, macro-F1, PBS, PLL of each arm.
    print((f"\n{'':5}" + "".join(f"  | {name:<27}" for name, _, _ in arms)).rstrip())
    print(f"{'epoch':>5}" + "".join(f"  | {'acc':>6} {'F1':>6} {'PBS':>6} {'PLL':>6}"
                                    for _ in arms))
    for epoch in range(args.total_epochs):
        print(f"{epoch:5d}" + "".join(
            "  | " + " ".join(f"{h[epoch][m]:6.4f}" for m in METRICS) for h in histories))
    print(f"{'time':>5}" + "".join(f"  | {s:25.1f} s" for s in seconds))

    print(f"\ndone in {demo.seconds_since(started):.1f} s ({args.implementation})\n")
    for i, ((name, _, _), h, wall) in enumerate(zip(arms, histories, seconds)):
        s = h[-1]
        print(f"{'Final' if i == 0 else '':<6} {name + ':':<14} accuracy {s['accuracy']:.4f}  "
              f"macro-F1 {s['macro_f1']:.4f}  PBS {s['pbs']:.4f}  PLL {s['pll']:.4f}  "
              f"wall time {wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
