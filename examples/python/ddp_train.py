"""compare_demo.py's three strategies (warmup-only, AP-only, warmup+blend) on
several processes: the model under DistributedDataParallel (Gloo, CPU), every
global batch shared between the processes, the ranking losses gathering the
processes' rows (gather_distributed=None: they gather whenever a process
group of more than one rank is initialised). Rank 0 evaluates and prints the
same progress lines and AUCPR-by-epoch table as compare_demo.py.

Each global batch is compare_demo.py's batch (the same --batch-size rows in
the same order, from the same seeded generator on every rank); rank r trains
on the r-th of --nproc_per_node contiguous pieces of it (sizes differing by
at most one). So the concatenation of the ranks' pieces in rank order, which
is what SmoothAPLoss / RecallAtQuantileLoss rank and queue, is the
single-process batch row for row, and under DDP's gradient averaging every
parameter gradient is the single-process gradient of that batch. The BCE
warmup loss is each rank's sum of BCE terms times world size / global batch
rows, so that DDP's average of the ranks' gradients is the gradient of the
global batch's mean BCE (a plain per-rank mean would weight the rows of
unequal pieces unequally, [128, 127] of a batch of 255 say). The printed
training loss is the mean over the ranks, which is the single-process loss
of the global batch.

usage (2 processes; the flags are compare_demo.py's):
  torchrun --nproc_per_node 2 --rdzv_backend c10d --rdzv_endpoint localhost:0 \\
      --redirects 1:1 --tee 1:1 examples/python/ddp_train.py [flags]
  python -m torch.distributed.run ... (the same, with the interpreter you choose)
  python examples/python/ddp_train.py [flags]     one process, no process group:
                                                  exactly compare_demo.py's run

--rdzv_backend c10d --rdzv_endpoint localhost:0 lets the rendezvous pick a
free port (torch 1.13's --standalone uses the fixed port 29400). --redirects
1:1 --tee 1:1 (local rank 1's stdout through a log file, teed to the
console with a "[default1]:" prefix; it prints nothing) leaves rank 0's
stdout untouched, and avoids a crash of torch 1.13's torchrun on Python 3.11,
where the default "0" parses to None (AttributeError: 'NoneType' object has
no attribute 'get'; the values 1, 2 and mappings of them parse). Newer torch
accepts the plain `torchrun --standalone --nproc_per_node 2 ...`; add
--monitor_interval 0.1 to have torch 1.13's launcher notice the end sooner
(it polls every 5 s).

torchrun sets OMP_NUM_THREADS=1 for each process unless it is set; --threads
sets the torch threads of each process. Ranks other than 0 print nothing
(their stdout goes to os.devnull); with --out rank 0 writes compare_demo.py's
CSV files and plots. --implementation seed needs one process: the seed's
proxy_losses does not gather across processes.

What to expect: compare_demo.py's table up to float rounding (measured on
torch 1.13, CPU, 2 processes of 1 thread against compare_demo.py):

- with the flags of tests/python/test_python_demos.py (1,600 rows, 5 %
  positives, 3 epochs, batch 256 or 255, queue 256): every AUCPR equal to
  compare_demo.py's to the last bit (the CSV's), the printed losses equal;
  the validation logits agree to 4e-7, except that the AP-only run's are
  all shifted by one common ~1e-4 (1.4e-4 at batch 256, 4e-4 at 255). That
  shift is the output bias: SmoothAP depends only on differences of logits,
  so the bias's gradient is zero in exact arithmetic and rounding noise
  (~1e-9) in float, different noise for one process and for two; Adam's
  step lr * m / (sqrt(v) + eps), eps 1e-8, turns the noise into bias steps
  of ~0.1 to 0.2 lr, different ones. A common shift changes neither the
  ranking loss nor any AUCPR.
- with the defaults (60,000 rows, 15 epochs, batch 512; compare_demo.py on
  2 threads): equal to the 4 printed decimals through epoch 5, then the
  columns drift apart; at epoch 14 warmup-only 0.0670 against 0.0668,
  AP-only 0.1105 against 0.1153, warmup+blend 0.0789 against 0.0803.
  compare_demo.py itself drifts as far with --threads 1 instead of 2 (AP-only
  0.1113, warmup+blend 0.0773 at epoch 14): 15 epochs of Adam amplify the
  rounding, as between proxyloss and the seed (README, "Python demos").

The rounding differs because each rank's matrix products run over its piece
of the rows and DDP adds the pieces' gradients, where one process sums all
the rows in one product, and the BCE is a sum times a factor instead of a
mean. It is not faster on a small machine: every rank computes the whole
global ranking loss (proxyloss/_distributed.py).
"""
from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import compare_demo
import demo_support as demo


class Shard:
    """This rank's rows of each global batch: the rank-th of `world`
    contiguous pieces (torch.tensor_split). Remembers the global batch's
    size for ShardedBCE."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world
        self.batch_rows = 0

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        self.batch_rows = int(rows.numel())
        return rows.tensor_split(self.world)[self.rank]


class ShardedBCE(nn.Module):
    """demo_support.BCEWarmupLoss of the global batch, as this rank's share:
    the sum of this rank's BCE terms times world / global batch rows. DDP
    averages the ranks' gradients, so the parameters get the gradient of the
    mean BCE over the global batch, and the mean over the ranks of this
    value is that mean BCE."""

    def __init__(self, shard: Shard):
        super().__init__()
        self.shard = shard

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        total = nn.functional.binary_cross_entropy_with_logits(
            logits.reshape(-1), targets.reshape(-1).to(logits.dtype), reduction="sum")
        return total * (self.shard.world / max(1, self.shard.batch_rows))


def mean_over_ranks(value: float) -> float:
    total = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(total)
    return float(total) / dist.get_world_size()


def parallel_for(rank: int, world: int) -> demo.Parallel | None:
    """How this rank shares the runs: None without a process group (one
    process, compare_demo.py's run)."""
    if not dist.is_initialized():
        return None
    wrap = DistributedDataParallel  # CPU: no device_ids; Gloo all-reduces the gradients
    if world == 1:
        return demo.Parallel(wrap=wrap)
    shard = Shard(rank, world)
    return demo.Parallel(wrap=wrap, shard=shard, warmup_loss=lambda: ShardedBCE(shard),
                         mean_loss=mean_over_ranks, evaluate=rank == 0)


def main(argv=None) -> int:
    launched = "WORLD_SIZE" in os.environ  # torchrun's environment (env://)
    rank = int(os.environ.get("RANK", "0")) if launched else 0
    world = int(os.environ.get("WORLD_SIZE", "1")) if launched else 1
    if rank != 0:
        sys.stdout = open(os.devnull, "w")
    args, losses, train, validation, started = demo.start_ranking_demo(__doc__, argv)
    if world > 1 and args.implementation == "seed":
        raise SystemExit("--implementation seed: proxy_losses does not gather across "
                         "processes; run it with one process")
    if launched:
        dist.init_process_group("gloo")
    pieces = [len(piece) for piece in torch.arange(args.batch_size).tensor_split(world)]
    group = "torch.distributed, gloo" if launched else "no process group"
    print(f"processes: {world} ({group}); each batch of {args.batch_size} rows shared "
          f"as {pieces}")
    print(compare_demo.describe_settings(args) + "\n")
    names, results = compare_demo.run_strategies(args, losses, train, validation,
                                                 parallel_for(rank, world))
    if rank == 0:
        if args.out:
            compare_demo.write_outputs(args, names, results, validation)
        compare_demo.print_summary(args, names, results, started)
    sys.stdout.flush()
    if launched:
        # (Not in a finally: a rank that raised must exit, so that torchrun
        # stops the others, not wait here for them.)
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
