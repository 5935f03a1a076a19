"""Three training strategies on the same data, initial weights and batch
order, compared by validation AUCPR epoch by epoch:

  warmup-only    BCE for all epochs (never switches)
  AP-only        SmoothAPLoss (or RecallAtQuantileLoss) from the first step
  warmup+blend   BCE warmup -> linear blend -> SmoothAPLoss, temperature decay

each a LossWarmupWrapper, on the imbalanced problem of examples/compare_demo.cpp
(make_classification: 60,000 rows, 0.5 % positives, 5 % label flips). Prints
each run's progress, the side-by-side AUCPR table, the best and final AUCPR
and the wall time of each run. The Python counterpart of
examples/compare_demo.cpp and of proxy-losses' examples/compare_demo.py.
The runs go one after the other, each on all of --threads.

usage:
  python examples/python/compare_demo.py                        the defaults
  python examples/python/compare_demo.py --loss recall          RecallAtQuantileLoss as main loss
  python examples/python/compare_demo.py --pos-rate 0.05        an easier problem
  python examples/python/compare_demo.py --warmup-epochs 5 --blend-epochs 3
  python examples/python/compare_demo.py --implementation seed  the seed's proxy_losses instead
  python examples/python/compare_demo.py --out results          CSV files and PNG plots
"""
import sys
import time

import demo_support as demo


def write_outputs(args, names, results, validation) -> None:
    from sklearn.metrics import precision_recall_curve

    out = demo.output_dir(args.out)
    table = demo.write_csv(
        out / "aucpr_by_epoch.csv", ["epoch", "phase", *names],
        [(e, results[-1]["reports"][e].phase, *(r["reports"][e].aucpr for r in results))
         for e in range(args.total_epochs)])
    demo.write_csv(
        out / "runs.csv",
        ["strategy", "implementation", "best_aucpr", "best_epoch", "final_aucpr", "seconds"],
        [(name, args.implementation, *best_of(r), r["reports"][-1].aucpr, r["seconds"])
         for name, r in zip(names, results)])
    epochs = list(range(args.total_epochs))
    by_epoch = demo.plot(
        out / "aucpr_by_epoch.png", f"Validation AUCPR by epoch ({args.implementation})",
        "epoch", "AUCPR",
        [demo.Series(epochs, [x.aucpr for x in r["reports"]], name)
         for name, r in zip(names, results)])
    curves = []
    for name, r in zip(names, results):
        precision, recall, _ = precision_recall_curve(
            validation.y.numpy(), r["reports"][-1].scores.double().numpy())
        demo.write_csv(out / f"pr_curve_{demo.slug(name)}.csv", ["recall", "precision"],
                       zip(recall.tolist(), precision.tolist()))
        curves.append(demo.Series(recall, precision, name))
    pr = demo.plot(out / "pr_curves.png", "Precision-recall on validation, final models",
                   "recall", "precision", curves, points=False)
    print(f"\nCSV in {table} (and runs.csv, pr_curve_*.csv), plots {by_epoch.name} and "
          f"{pr.name} in {out}")


def best_of(result):
    best = max(result["reports"], key=lambda r: r.aucpr)
    return best.aucpr, best.epoch


def describe_settings(args) -> str:
    return (f"warmup_epochs={args.warmup_epochs}  blend_epochs={args.blend_epochs}  "
            f"total_epochs={args.total_epochs}  pos_rate={args.pos_rate}")


def strategies(args, train_rows: int) -> list[tuple[str, demo.Schedule]]:
    """The three strategies' names and schedules. The temperature decays over
    each strategy's main phase."""
    steps = demo.steps_per_epoch(args, train_rows)
    label = demo.main_loss_label(args)
    return [
        ("warmup-only", demo.Schedule(args.total_epochs, 0, args.total_epochs * steps)),
        (f"{label}-only", demo.Schedule(0, 0, args.total_epochs * steps)),
        ("warmup+blend", demo.Schedule(args.warmup_epochs, args.blend_epochs,
                                       (args.total_epochs - args.warmup_epochs) * steps)),
    ]


def run_strategies(args, losses, train, validation, parallel=None):
    """Trains the three strategies one after the other, printing each epoch;
    returns their names and results ({"reports": [EpochReport per epoch],
    "seconds": wall time}). `parallel`: see demo_support.Parallel (one
    process by default; where it does not evaluate, "reports" stays
    empty)."""
    names, results = [], []
    for name, schedule in strategies(args, train.rows):
        print(f"Running {name}...", flush=True)
        reports = []

        def on_epoch(r: demo.EpochReport, name=name, reports=reports) -> None:
            reports.append(r)
            print(f"  {name:<12} epoch {r.epoch + 1:3d}/{args.total_epochs}  "
                  f"loss {r.loss:.4f}  AUCPR {r.aucpr:.4f}  ({r.seconds:.1f} s)", flush=True)

        run_started = time.perf_counter()
        # Same initial weights for every strategy: make_mlp seeds torch first.
        model = demo.make_mlp([train.x.shape[1], 64, 1], args.seed)
        demo.train_ranking_model(losses, args, schedule, model, train, validation, on_epoch,
                                 parallel)
        names.append(name)
        results.append({"reports": reports, "seconds": demo.seconds_since(run_started)})
    return names, results


def print_summary(args, names, results, started) -> None:
    """The AUCPR-by-epoch table, the total time and each run's best and final
    AUCPR."""
    width = 12
    header = f"{'epoch':>5}  {'phase':>6}" + "".join(f"  {n:>{width}}" for n in names)
    print(f"\n{header}\n{'-' * len(header)}")
    for epoch in range(args.total_epochs):
        row = [r["reports"][epoch].aucpr for r in results]
        print(f"{epoch:5d}  {results[-1]['reports'][epoch].phase:>6}" +
              "".join(f"  {v:{width}.4f}" for v in row))
    print(f"{'time':>5}  {'':>6}" + "".join(f"  {r['seconds']:{width - 2}.1f} s"
                                           for r in results))

    print(f"\ntotal {demo.seconds_since(started):.1f} s ({args.implementation})\n")
    print("Best AUCPR  " + "  ".join(f"{n}: {best_of(r)[0]:.4f}"
                                     for n, r in zip(names, results)))
    for name, r in zip(names, results):
        best, epoch = best_of(r)
        print(f"  {name:<12}  best {best:.4f} at epoch {epoch:<3d}  final "
              f"{r['reports'][-1].aucpr:.4f}  wall time {r['seconds']:.1f} s")


def main(argv=None) -> int:
    args, losses, train, validation, started = demo.start_ranking_demo(__doc__, argv)
    print(describe_settings(args) + "\n")
    names, results = run_strategies(args, losses, train, validation)
    if args.out:
        write_outputs(args, names, results, validation)
    print_summary(args, names, results, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
