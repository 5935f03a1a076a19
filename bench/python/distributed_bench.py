#!/usr/bin/env python3
"""SmoothAPLoss across processes: per-rank forward + backward time of one
global pool at R = 1 and R = 2 ranks (torch.distributed, Gloo on the CPU).

The global pool is the same in every run: M rows (queue_size=0, so the pool
is the global batch), C = 1, 0.5 % positives (a fraud-like rate), float32,
tau 0.01 and 0.05. Scores ``separated`` (a positive's logit is randn + 1) and
``unseparated`` (every logit randn: an untrained model). With R ranks each
holds M / R rows of it (a float32 leaf, requires_grad), so R = 2 is data
parallelism over the same global batch. Runs:

  R = 1            one process, no process group: the plain loss;
  R = 2 unshared   gather_distributed (the default): every rank computes the
                   whole loss of the global batch;
  R = 2 shared     the same gather with the experimental share turned on
                   (the private switch ``_share_pair_work = True``): each
                   rank evaluates the anchor terms of its share of the pool
                   (1/R of them), the shares are added across the ranks.

Each rank runs one torch thread, so R = 2 uses two cores where R = 1 uses
one: the per-rank time is what a step costs a rank. One step is
``x.grad = None; loss(x, targets).backward()``; after 1 warmup step, the
median of the steps (all ranks start each step together after a barrier);
the step time of R = 2 is the slower rank's median. Reported with the pair
work's ratios to R = 1.

    PYTHONPATH=python PROXYLOSS_LIBRARY=build/libproxyloss.so \\
        build/python-env/bin/python bench/python/distributed_bench.py \\
        [--markdown FILE] [--sizes 65536 1048576] [--repeats 5]
"""
import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import proxyloss

POSITIVE_RATE = 0.005


def global_pool(M, scores, seed=0):
    generator = torch.Generator().manual_seed(seed)
    targets = (torch.rand(M, generator=generator) < POSITIVE_RATE).long()
    x = torch.randn(M, 1, generator=generator)
    if scores == "separated":
        x[targets.eq(1), 0] += 1.0
    return x, targets


def time_steps(loss, x, targets, repeats, barrier):
    times = []
    for step in range(repeats + 1):
        barrier()
        start = time.perf_counter()
        x.grad = None
        loss(x, targets).backward()
        elapsed = time.perf_counter() - start
        if step > 0:  # the first step is the warmup
            times.append(elapsed)
    return statistics.median(times)


def worker(rank, world, store_path, cases, repeats, shared, out_path):
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank,
                                world_size=world)
    barrier = dist.barrier if world > 1 else (lambda: None)
    results = []
    for M, scores, tau in cases:
        x_all, t_all = global_pool(M, scores)
        rows = M // world
        x = x_all[rank * rows:(rank + 1) * rows].clone().requires_grad_(True)
        targets = t_all[rank * rows:(rank + 1) * rows]
        loss = proxyloss.SmoothAPLoss(1, queue_size=0, temperature=tau)
        loss._share_pair_work = shared
        results.append(time_steps(loss, x, targets, repeats, barrier))
    torch.save(results, f"{out_path}.{rank}")
    if world > 1:
        dist.destroy_process_group()


def run(world, cases, repeats, shared):
    with tempfile.TemporaryDirectory() as folder:
        store = os.path.join(folder, "store")
        out = os.path.join(folder, "times")
        mp.spawn(worker, args=(world, store, cases, repeats, shared, out), nprocs=world,
                 join=True)
        per_rank = [torch.load(f"{out}.{rank}") for rank in range(world)]
    # A step of R ranks lasts as long as its slowest rank.
    return [max(rank_times[i] for rank_times in per_rank) for i in range(len(cases))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[65536, 1 << 20])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.01, 0.05])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--markdown", help="also write the report to this file")
    args = parser.parse_args()
    cases = [(M, scores, tau) for M in args.sizes for scores in ("separated", "unseparated")
             for tau in args.temperatures]
    print(f"{len(cases)} cases, {args.repeats} timed steps each", file=sys.stderr)
    one = run(1, cases, args.repeats, shared=False)
    shared = run(2, cases, args.repeats, shared=True)
    unshared = run(2, cases, args.repeats, shared=False)
    lines = [
        f"SmoothAPLoss, C = 1, {POSITIVE_RATE:.1%} positives, float32, queue_size=0, "
        "forward + backward, per-rank step time (median; R = 2: the slower rank), one "
        f"torch thread per rank, Gloo; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        "| global pool M | scores | tau | R = 1 | R = 2, unshared | R = 2, shared | "
        "unshared / R = 1 | shared / R = 1 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (M, scores, tau), a, b, c in zip(cases, one, shared, unshared):
        lines.append(f"| {M:,} | {scores} | {tau:g} | {a * 1e3:.1f} ms | {c * 1e3:.1f} ms | "
                     f"{b * 1e3:.1f} ms | {c / a:.2f} | {b / a:.2f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(report)


if __name__ == "__main__":
    main()
