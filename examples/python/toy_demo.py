"""One model through the whole schedule: BCE warmup, a linear blend, then
Smooth-AP (or RecallAtQuantile) with a geometrically decaying temperature,
all driven by LossWarmupWrapper, on a synthetic imbalanced binary problem
(scikit-learn's make_classification). Prints, per epoch, the phase, the main
loss's weight, its temperature, the mean training loss and the validation
AUCPR (average_precision_score), so you can see whether the switch to the
ranking loss helps or hurts. The Python counterpart of examples/toy_demo.cpp
and of proxy-losses' examples/toy_demo.py.

usage:
  python examples/python/toy_demo.py                        3 warmup + 2 blend epochs, 15 in all
  python examples/python/toy_demo.py --blend-epochs 0       hard switch
  python examples/python/toy_demo.py --pos-rate 0.05        an easier problem
  python examples/python/toy_demo.py --loss recall          RecallAtQuantileLoss as main loss
  python examples/python/toy_demo.py --implementation seed  the seed's proxy_losses instead
  python examples/python/toy_demo.py --out results          also results/toy_demo.csv, .png
"""
import sys

import demo_support as demo


def main(argv=None) -> int:
    args, losses, train, validation, started = demo.start_ranking_demo(__doc__, argv)

    steps = demo.steps_per_epoch(args, train.rows)
    schedule = demo.Schedule(args.warmup_epochs, args.blend_epochs,
                             (args.total_epochs - args.warmup_epochs) * steps)
    model = demo.make_mlp([train.x.shape[1], 64, 1], args.seed)

    header = (f"{'epoch':>5}  {'phase':>7}  {'weight':>6}  {'temp':>8}  {'loss':>8}  "
              f"{'AUCPR':>7}  {'time':>6}")
    print(f"\n{header}\n{'-' * len(header)}")
    reports = []

    def on_epoch(r: demo.EpochReport) -> None:
        reports.append(r)
        print(f"{r.epoch:5d}  {r.phase:>7}  {r.main_weight:6.2f}  {r.temperature:8.5f}  "
              f"{r.loss:8.4f}  {r.aucpr:7.4f}  {r.seconds:5.1f}s", flush=True)

    demo.train_ranking_model(losses, args, schedule, model, train, validation, on_epoch)
    training_seconds = reports[-1].seconds

    best = max(reports, key=lambda r: r.aucpr)
    print(f"\nbest AUCPR {best.aucpr:.4f} (epoch {best.epoch}, {best.phase}); "
          f"final {reports[-1].aucpr:.4f}")

    if args.out:
        out = demo.output_dir(args.out)
        csv_path = demo.write_csv(
            out / "toy_demo.csv",
            ["epoch", "phase", "main_weight", "temperature", "loss", "aucpr", "seconds"],
            [(r.epoch, r.phase, r.main_weight, r.temperature, r.loss, r.aucpr, r.seconds)
             for r in reports])
        epochs = [r.epoch for r in reports]
        label = f"warmup+blend ({args.implementation})"
        png = demo.plot(out / "toy_demo.png", "Validation AUCPR by epoch", "epoch", "AUCPR",
                        [demo.Series(epochs, [r.aucpr for r in reports], label)])
        loss_png = demo.plot(out / "toy_demo_loss.png", "Mean training loss by epoch",
                             "epoch", "loss",
                             [demo.Series(epochs, [r.loss for r in reports], label)])
        print(f"numbers in {csv_path}, plots in {png} and {loss_png}")
    print(f"done in {demo.seconds_since(started):.1f} s "
          f"(training and evaluation {training_seconds:.1f} s, {args.implementation})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
