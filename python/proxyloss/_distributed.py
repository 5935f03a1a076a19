"""Whether a loss gathers its batch across processes (``gather_distributed``)."""
import torch.distributed as dist

_CHOICES = (None, True, False)


def check_gather_option(name, gather_distributed):
    if gather_distributed not in _CHOICES or not (
            gather_distributed is None or isinstance(gather_distributed, bool)):
        raise ValueError(f"{name}: gather_distributed must be None, True or False, "
                         f"got {gather_distributed!r}")


def refuse_to_gather(name, gather_distributed):
    """Decides at every call (not cached) whether this forward would gather:
    ``False`` never, ``None`` when a process group with more than one rank is
    initialised, ``True`` always (an error without a process group). Gathering
    is not implemented yet, so a forward that would gather raises
    NotImplementedError instead of silently ranking one process's batch."""
    if gather_distributed is False:
        return
    initialised = dist.is_available() and dist.is_initialized()
    if gather_distributed is True and not initialised:
        raise RuntimeError(f"{name}: gather_distributed=True needs an initialised "
                           "torch.distributed process group")
    if initialised and dist.get_world_size() > 1:
        raise NotImplementedError(
            f"{name}: gathering the batch across processes (gather_distributed) is not "
            "implemented yet; pass gather_distributed=False to compute on each "
            "process's batch alone")
