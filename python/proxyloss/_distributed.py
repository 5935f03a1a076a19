"""Gathering a loss's batch across processes (``gather_distributed``).

What a gathering forward does, on every rank of the default process group:

1. a header (one small int64 all_gather): this rank's row count, whether its
   call is well formed (every tensor has the rows of the first), a digest of
   the module's options and of the tensors' presence, dtypes and trailing
   shapes, the queue's write pointer and a checksum of its contents and,
   where the op may subsample, a seed. When any rank's call is malformed or
   the digests differ, every rank gathers the descriptions
   (all_gather_object) and raises the same ValueError, naming the ranks and
   what differs; differing queues raise the same ValueError on every rank
   too. So no rank is left waiting in a later collective, and no rank
   silently ranks another pool;
2. the rows: each tensor padded to the largest batch, all_gathered (the list
   form: Gloo has no all_gather_into_tensor), cut back and concatenated in
   rank order. The first tensor (the logits) keeps its gradient through
   ``_GatheredRows``: its backward returns this rank's slice of the incoming
   gradient times the world size. DistributedDataParallel averages the
   parameter gradients over the ranks, so the sum of the ranks' own-slice
   gradients is recovered exactly: every parameter gradient equals the
   single-process gradient of the loss on the concatenated batch. (This
   assumes the gradients are averaged across ranks, as DDP does; summed
   gradients would be world_size times too large.) The successor
   (imbalanced-losses 0.6.0) keeps the local slice's gradient unscaled, so
   under DDP its gradient is 1/world_size of the global one.

The loss is then computed on the global batch, the same on every rank, and
the global batch is queued on every rank in rank order, so the queues stay
bitwise identical. Every rank computes the whole global loss. The ranks can
instead share Smooth-AP's pair work (``partial_gradient=True``; off by
default, the private switch ``_share_pair_work`` of the ranking modules,
because measured slower: the fused kernel's pair work is now a fraction of
the O(M log M) sort that every rank still does,
bench/python/distributed_results.md): rank r evaluates only the anchor
terms of share r of R (the op's share_index / share_count), the
shares' loss values are added with ``sum_shares`` (an all_gather of R x (C +
1) numbers, added in rank order: the same bits on every rank), and the
gradient that reaches the gathered rows, this rank's share's only, is summed
over the ranks (one all_reduce of [N_global, C]) in _GatheredRows' backward
before this rank takes its slice. So each rank does 1/R of the anchor terms,
forward and backward, for O(M C) communication; the loss then equals the
single-process loss to rounding (the anchor terms are added in another
order), not bitwise. With ``max_pool_size`` the op subsamples
with rank 0's seed on every rank (each rank draws one seed per call from its
own generator; rank 0's is used), so the ranks' subsamples agree. Errors of
the process group (a collective's timeout, a rank that died) propagate as
they are. Every rank must call the loss (with the same gather decision): a
rank that does not leaves the others in the header's all_gather until the
process group's timeout.
"""
import contextlib
import hashlib

import torch
import torch.distributed as dist

_CHOICES = (None, True, False)
# Header fields (int64): rows, malformed call, digest, seed, queue pointer,
# queue checksum.
_ROWS, _MALFORMED, _DIGEST, _SEED, _POINTER, _CHECKSUM = range(6)


def check_gather_option(name, gather_distributed):
    if gather_distributed not in _CHOICES or not (
            gather_distributed is None or isinstance(gather_distributed, bool)):
        raise ValueError(f"{name}: gather_distributed must be None, True or False, "
                         f"got {gather_distributed!r}")


def should_gather(name, gather_distributed):
    """Decided at every call (not cached): ``False`` never gathers; ``None``
    gathers when a process group with more than one rank is initialised;
    ``True`` needs an initialised process group (a RuntimeError otherwise)
    and gathers when it has more than one rank (with one, gathering is the
    identity)."""
    if gather_distributed is False:
        return False
    if not (dist.is_available() and dist.is_initialized()):
        if gather_distributed is True:
            raise RuntimeError(f"{name}: gather_distributed=True needs an initialised "
                               "torch.distributed process group")
        return False
    return dist.get_world_size() > 1


class _GatheredRows(torch.autograd.Function):
    """The concatenation of every rank's rows, this rank's being ``local``;
    backward: this rank's slice of the gradient times the world size (see
    the module's docstring). With ``partial`` the incoming gradient is this
    rank's share of it: summed over the ranks first (all_reduce)."""

    @staticmethod
    def forward(ctx, local, rank, partial, *others):
        ctx.start = sum(piece.shape[0] for piece in others[:rank])
        ctx.rows = local.shape[0]
        ctx.world = len(others) + 1
        ctx.partial = partial
        return torch.cat(others[:rank] + (local,) + others[rank:])

    @staticmethod
    def backward(ctx, grad):
        if ctx.partial:
            grad = grad.contiguous().clone()
            dist.all_reduce(grad)
        own = grad.narrow(0, ctx.start, ctx.rows) * ctx.world
        return (own, None, None) + (None,) * (ctx.world - 1)


class _SumOfShares(torch.autograd.Function):
    """The sum over the ranks of each rank's ``tensors`` (same shapes and
    dtype on every rank): all_gathered and added in rank order, so every
    rank gets the same bits. Backward: the identity (each rank's share
    enters the sum once; the gradient of the shares' own inputs is summed
    over the ranks where they are gathered rows, _GatheredRows)."""

    @staticmethod
    def forward(ctx, *tensors):
        ctx.shapes = [tensor.shape for tensor in tensors]
        flat = torch.cat([tensor.detach().reshape(-1) for tensor in tensors])
        shares = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
        dist.all_gather(shares, flat)
        total = shares[0]
        for share in shares[1:]:
            total = total + share
        return tuple(part.reshape(shape).clone() for part, shape in
                     zip(total.split([shape.numel() for shape in ctx.shapes]), ctx.shapes))

    @staticmethod
    def backward(ctx, *grads):
        return grads


def sum_shares(*tensors):
    """The ranks' shares of a loss's results, added (see _SumOfShares)."""
    return _SumOfShares.apply(*tensors)


def gather_batch(name, options, tensors, *, queue=None, shared_seed=False,
                 partial_gradient=False):
    """Gathers ``tensors`` (a sequence of ``(label, tensor or None)``, the
    first one the logits, whose rows the others must have) over the default
    process group. ``options``: ``(name, value)`` pairs that every rank must
    agree on (values with a deterministic repr). ``queue``: None, or the
    queue's write pointer and its other buffers, ``(ptr, [buffers])``, which
    must agree too (the pointer, and a checksum of the buffers' bits).
    ``shared_seed``: also agree on a seed, rank 0's draw from its default
    generator of the logits' device (every rank draws one per call).
    ``partial_gradient``: the loss computed from the gathered logits is this
    rank's share (sum_shares adds them): their gradient is summed over the
    ranks in the backward (_GatheredRows).

    Returns ``(gathered, seed)``: the tensors concatenated in rank order
    (None stays None; the logits with the gradient rule of _GatheredRows),
    and rank 0's seed (None unless ``shared_seed``)."""
    world, rank = dist.get_world_size(), dist.get_rank()
    malformed = _malformed(tensors)
    description = ((("loss", name),) + tuple(options),
                   tuple(_describe(tensor) for _, tensor in tensors))
    digest = int.from_bytes(hashlib.blake2b(repr(description).encode(), digest_size=7)
                            .digest(), "little")
    first = tensors[0][1]
    device = first.device if isinstance(first, torch.Tensor) else torch.device("cpu")
    rows = first.shape[0] if malformed is None else 0
    header = [torch.tensor([rows, malformed is not None, digest], dtype=torch.int64,
                           device=device)]
    header.append(torch.randint(0, 2 ** 62, (1,), dtype=torch.int64, device=device)
                  if shared_seed else torch.zeros(1, dtype=torch.int64, device=device))
    if queue is not None:
        header.append(queue[0].detach().reshape(1).to(device=device, dtype=torch.int64))
        header.append(_checksum(queue[1]).to(device).reshape(1))
    else:
        header.append(torch.zeros(2, dtype=torch.int64, device=device))
    header = torch.cat(header)
    headers = [torch.empty_like(header) for _ in range(world)]
    dist.all_gather(headers, header)
    table = torch.stack(headers).tolist()
    if any(row[_MALFORMED] for row in table) or len({row[_DIGEST] for row in table}) > 1:
        _raise_disagreement(name, world, malformed, description,
                            [label for label, _ in tensors])
    if len({row[_POINTER] for row in table}) > 1:
        pointers = ", ".join(f"rank {r}: {row[_POINTER]}" for r, row in enumerate(table))
        raise ValueError(
            f"{name}: the queues' write pointers differ across ranks ({pointers}): the "
            "queues have diverged (e.g. reset_queue() or load_state_dict() on some ranks "
            "only), so the ranks would rank different pools (gather_distributed)")
    if len({row[_CHECKSUM] for row in table}) > 1:
        raise ValueError(
            f"{name}: the queues' contents differ across ranks (their checksums differ): "
            "the queues have diverged (e.g. the loss was called before "
            "init_process_group, or load_state_dict() ran on some ranks only), so the "
            "ranks would rank different pools (gather_distributed); reset_queue() on "
            "every rank, or load the same state on every rank")
    counts = [row[_ROWS] for row in table]
    gathered = [None if tensor is None else
                _gather_rows(tensor, counts, rank, index == 0, partial_gradient)
                for index, (_, tensor) in enumerate(tensors)]
    return gathered, (table[0][_SEED] if shared_seed else None)


def call_seeded(seed, device, function, *args):
    """``function(*args)``, with the default generator of ``device`` started
    from ``seed`` (and restored after) unless ``seed`` is None. (No context
    manager on the common path, so that TorchDynamo traces the call as
    before.)"""
    if seed is None:
        return function(*args)
    with _seeded(device, seed):
        return function(*args)


@contextlib.contextmanager
def _seeded(device, seed):
    if device.type == "cpu":
        generator = torch.default_generator
    elif device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        generator = torch.cuda.default_generators[index]
    else:  # no default generator we know of: the op draws as it would
        yield
        return
    state = generator.get_state()
    generator.manual_seed(seed)
    try:
        yield
    finally:
        generator.set_state(state)


def _checksum(buffers):
    """An int64 checksum of the buffers' bits (each buffer [Q, ...]): the sum
    over the buffers k and their rows i of (k + 1) (i mod 65521 + 1) times
    the sum of row i's 16-bit words. Exact (integers, no rounding, no
    overflow below 2^31 words in all), sensitive to which row holds what,
    and one pass over the queue."""
    total = None
    for k, buffer in enumerate(buffers):
        rows = buffer.detach().reshape(buffer.shape[0], -1)
        if rows.element_size() == 1:
            words = rows.to(torch.int16)
        else:
            words = rows.contiguous().view(torch.int16)
        sums = words.sum(1, dtype=torch.int64)
        place = torch.arange(sums.numel(), dtype=torch.int64, device=sums.device) % 65521 + 1
        term = (sums * place).sum() * (k + 1)
        total = term if total is None else total + term
    if total is None:
        return torch.zeros((), dtype=torch.int64)
    return total


def _malformed(tensors):
    """Why this rank's call cannot be gathered (a string), or None."""
    first_label, first = tensors[0]
    for label, tensor in tensors:
        if tensor is not None and not isinstance(tensor, torch.Tensor):
            return f"{label} must be a tensor, got {type(tensor).__name__}"
    if first.dim() == 0:
        return f"{first_label} has no batch dimension (dim 0) to gather along"
    for label, tensor in tensors[1:]:
        if tensor is not None and (tensor.dim() == 0 or tensor.shape[0] != first.shape[0]):
            rows = "no batch dimension" if tensor.dim() == 0 else f"{tensor.shape[0]} rows"
            return (f"{label} has {rows} but {first_label} has {first.shape[0]} rows "
                    f"(shapes {tuple(tensor.shape)} and {tuple(first.shape)})")
    return None


def _describe(tensor):
    """What must agree across ranks about a tensor: presence, dtype, the
    shape after dim 0."""
    if not isinstance(tensor, torch.Tensor):
        return None if tensor is None else type(tensor).__name__
    return (str(tensor.dtype).replace("torch.", ""), tuple(tensor.shape[1:]))


def _show(description):
    if description is None:
        return "None"
    if isinstance(description, str):
        return description
    dtype, trailing = description
    return f"{dtype} [{', '.join(['N'] + [str(size) for size in trailing])}]"


def _raise_disagreement(name, world, malformed, description, labels):
    """Every rank gathers every rank's description and raises the same
    ValueError."""
    everyone = [None] * world
    dist.all_gather_object(everyone, (malformed, description))
    problems = [f"rank {r}: {why}" for r, (why, _) in enumerate(everyone) if why is not None]
    options = [dict(options) for _, (options, _) in everyone]
    for key in dict.fromkeys(key for ranks in options for key in ranks):
        values = [ranks.get(key) for ranks in options]
        if any(value != values[0] for value in values):
            problems.append(f"{key} differs: " + ", ".join(
                f"rank {r} has {value!r}" for r, value in enumerate(values)))
    for index, label in enumerate(labels):
        shown = [_show(tensors[index]) for _, (_, tensors) in everyone]
        if any(value != shown[0] for value in shown):
            problems.append(f"{label} differs: " + ", ".join(
                f"rank {r} passes {value}" for r, value in enumerate(shown)))
    raise ValueError(f"{name}: the ranks' calls disagree, so the batch cannot be gathered "
                     f"across processes (gather_distributed): {'; '.join(problems)}")


def _gather_rows(tensor, counts, rank, with_grad, partial_gradient):
    """Every rank's rows of ``tensor``, concatenated in rank order."""
    local = tensor if with_grad else tensor.detach()
    transport = local.detach()
    if transport.dtype == torch.bool:  # Gloo and NCCL move bytes
        transport = transport.to(torch.uint8)
    width = max(counts)
    if width == 0:
        pieces = [transport] * len(counts)
    else:
        if transport.shape[0] < width:
            padding = transport.new_zeros((width - transport.shape[0],) + transport.shape[1:])
            transport = torch.cat((transport, padding))
        transport = transport.contiguous()
        buffers = [torch.empty_like(transport) for _ in counts]
        dist.all_gather(buffers, transport)
        pieces = [buffer[:rows] for buffer, rows in zip(buffers, counts)]
    if tensor.dtype == torch.bool:
        pieces = [piece.bool() for piece in pieces]
    if with_grad:
        return _GatheredRows.apply(local, rank, partial_gradient,
                                   *(pieces[:rank] + pieces[rank + 1:]))
    pieces[rank] = local
    return torch.cat(pieces)
