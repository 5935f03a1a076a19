#!/usr/bin/env python3
"""PAUCAtBudgetLoss forward + backward: proxyloss against the reference's own
implementation (imbalanced-losses 0.6.0, import name ``imbalanced_losses``),
in the same process.

Cases: M = 16,384 and 65,536 rows (queue_size=0: M is the live batch), C = 1
(5 % positives) and C = 4 (classes 1..3 take M // 20 rows each, class 0 the
rest), both surrogates, the default band (alpha 0, beta 0.005) and a wide one
(alpha 0.01, beta 0.3, where the pairwise band holds 30 % of the negatives),
n_knots 2 and 16 for the trapezoid, temperature 0.1 (the default), and two
score regimes: ``unseparated`` (every logit randn, the start of training)
and ``separated`` (a positive's own logit is randn + 1).

One step is ``x.grad = None; module(x, targets).backward()`` on a float32
leaf x [M, C]; both modules are timed interleaved in rounds after one warmup
step each; the result is the median step time. Before timing, the two
losses and gradients are compared (max abs difference printed).

Peak memory (``--rss``): the pairwise surrogate at M = 65,536, C = 1, both
bands, one step in a fresh process per implementation (``--rss-case``),
reported as the growth of its peak resident memory (VmHWM) over the
process after its imports and inputs (the reference builds [P, band] matrices; ours keeps O(M)).

    PYTHONPATH=python PROXYLOSS_LIBRARY=build/libproxyloss.so \\
        build/python-env/bin/python bench/python/pauc_bench.py [--markdown FILE]
"""
import argparse
import datetime
import platform
import statistics
import subprocess
import sys
import time

import torch

import imbalanced_losses
import proxyloss


def make_inputs(M, C, scores, seed=0):
    generator = torch.Generator().manual_seed(seed)
    if C == 1:
        targets = (torch.rand(M, generator=generator) < 0.05).long()
    else:
        targets = torch.zeros(M, dtype=torch.long)
        minority = M // 20
        for c in range(1, C):
            targets[(c - 1) * minority:c * minority] = c
        targets = targets[torch.randperm(M, generator=generator)]
    x = torch.randn(M, C, generator=generator)
    if scores == "separated":
        column = targets.clamp_max(C - 1) if C > 1 else torch.zeros_like(targets)
        positive = targets.ne(0) if C == 1 else torch.ones(M, dtype=torch.bool)
        x[torch.arange(M)[positive], column[positive]] += 1.0
    return x, targets


def step(module, x, targets):
    x.grad = None
    loss = module(x, targets)
    loss.backward()
    return loss


def compare(ours, reference, x, targets):
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    la = step(ours, xa, targets)
    lb = step(reference, xb, targets)
    return (la - lb).abs().item(), (xa.grad - xb.grad).abs().max().item()


def median_step_ms(modules, x, targets, min_time, max_reps):
    """Interleaved rounds: one step of each module per round."""
    times = [[] for _ in modules]
    for module in modules:  # warmup
        step(module, x, targets)
    start = time.perf_counter()
    while (time.perf_counter() - start < min_time * len(modules) or len(times[0]) < 3) \
            and len(times[0]) < max_reps:
        for k, module in enumerate(modules):
            t0 = time.perf_counter()
            step(module, x, targets)
            times[k].append(time.perf_counter() - t0)
    return [statistics.median(t) * 1e3 for t in times], len(times[0])


def high_water_mib():
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not
    inherited from the parent that spawned it)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_case(spec):
    """One pairwise step in this process: prints the peak memory growth in MiB."""
    impl, alpha, beta = spec.split(":")
    package = proxyloss if impl == "ours" else imbalanced_losses
    x, targets = make_inputs(65536, 1, "unseparated")
    module = package.PAUCAtBudgetLoss(1, alpha=float(alpha), beta=float(beta),
                                      surrogate="pairwise", queue_size=0)
    leaf = x.clone().requires_grad_(True)
    before = high_water_mib()
    step(module, leaf, targets)
    print(high_water_mib() - before)


def rss_rows(args):
    rows = []
    for alpha, beta in ((0.0, 0.005), (0.01, 0.3)):
        growth = {}
        for impl in ("reference", "ours"):
            out = subprocess.run([sys.executable, __file__, "--threads", str(args.threads),
                                  "--rss-case", f"{impl}:{alpha}:{beta}"],
                                 capture_output=True, text=True, check=True).stdout
            growth[impl] = float(out.split()[-1])
        rows.append(f"| 65,536 | 1 | [{alpha}, {beta}] | pairwise | {growth['reference']:.0f} "
                    f"| {growth['ours']:.0f} |")
    return rows


def cases(args):
    for M in args.M:
        for C in args.classes:
            for scores in ("unseparated", "separated"):
                for alpha, beta in ((0.0, 0.005), (0.01, 0.3)):
                    yield dict(M=M, C=C, scores=scores, alpha=alpha, beta=beta,
                               surrogate="pairwise", n_knots=2)
                    for knots in (2, 16):
                        yield dict(M=M, C=C, scores=scores, alpha=alpha, beta=beta,
                                   surrogate="trapezoid", n_knots=knots)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--M", type=lambda s: [int(v) for v in s.split(",")],
                   default=[16384, 65536])
    p.add_argument("--classes", type=lambda s: [int(v) for v in s.split(",")],
                   default=[1, 4])
    p.add_argument("--min-time", type=float, default=0.3)
    p.add_argument("--max-reps", type=int, default=50)
    p.add_argument("--markdown", help="also write the table to this file")
    p.add_argument("--rss", action="store_true", help="also measure peak memory")
    p.add_argument("--rss-case", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.rss_case:
        rss_case(args.rss_case)
        return
    started = time.perf_counter()
    rows = []
    for case in cases(args):
        options = dict(num_classes=case["C"], alpha=case["alpha"], beta=case["beta"],
                       surrogate=case["surrogate"], n_knots=case["n_knots"], queue_size=0)
        ours = proxyloss.PAUCAtBudgetLoss(**options)
        reference = imbalanced_losses.PAUCAtBudgetLoss(**options)
        x, targets = make_inputs(case["M"], case["C"], case["scores"])
        d_loss, d_grad = compare(ours, reference, x, targets)
        leaf = x.clone().requires_grad_(True)
        (ms_ours, ms_ref), reps = median_step_ms([ours, reference], leaf, targets,
                                                 args.min_time, args.max_reps)
        row = dict(case, ours=ms_ours, reference=ms_ref, reps=reps, d_loss=d_loss,
                   d_grad=d_grad)
        rows.append(row)
        print(f"{row}", flush=True)
    wall = time.perf_counter() - started
    machine = (f"{platform.processor() or platform.machine()}, {args.threads} threads, "
               f"torch {torch.__version__}, imbalanced-losses "
               f"{getattr(imbalanced_losses, '__version__', '0.6.0')}, "
               f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
               f"{wall / 60:.1f} min")
    lines = [f"PAUCAtBudgetLoss forward + backward, float32, queue_size 0, temperature 0.1 "
             f"({machine}); median of interleaved steps in one process; |d loss| and "
             f"max |d grad| against the reference on the same inputs.", "",
             "| M | C | scores | band | surrogate | reference ms | proxyloss ms | speed-up "
             "| \\|d loss\\| | max \\|d grad\\| |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        surrogate = (r["surrogate"] if r["surrogate"] == "pairwise"
                     else f"trapezoid K={r['n_knots']}")
        lines.append(f"| {r['M']:,} | {r['C']} | {r['scores']} | [{r['alpha']}, {r['beta']}] "
                     f"| {surrogate} | {r['reference']:.2f} | {r['ours']:.2f} | "
                     f"{r['reference'] / r['ours']:.2f}x | {r['d_loss']:.1e} | "
                     f"{r['d_grad']:.1e} |")
    if args.rss:
        lines += ["", "Peak memory of one step: growth of VmHWM in a fresh process (MiB):",
                  "", "| M | C | band | surrogate | reference MiB | proxyloss MiB |",
                  "|---|---|---|---|---|---|"] + rss_rows(args)
    report = "\n".join(lines) + "\n"
    print(report)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
