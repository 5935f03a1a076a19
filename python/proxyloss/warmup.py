"""LossWarmupWrapper: a standard loss during a warmup, a linear blend into the
main (ranking) loss, then a geometric decay of the main loss's temperature.

The seed's ``LossWarmupWrapper`` (proxy-losses 0.1.3) with its arguments and
hooks, plus what the successor (imbalanced-losses 0.6.0) added: step mode
(``warmup_steps``, ``blend_steps``), ``final_main_weight``, ``main_weight``,
defaults for the schedule, the schedule state in ``state_dict`` (key
``_extra_state``, the successor's format, so its checkpoints load). The two
losses may be any callables ``loss(logits, targets, **kwargs)``; the wrapper
computes nothing but the blend ``(1 - w) warmup + w main`` of their results.

Schedule, with t the epoch (epoch mode) or the global step (step mode),
W warmup and B blend epochs/steps, f = final_main_weight:
    t < W:           warmup loss only                       main_weight = 0
    W <= t < W + B:  (1 - w) warmup + w main,   w = f (t - W + 1) / (B + 1)
    t >= W + B:      (1 - w) warmup + w main,   w = f   (main alone when f = 1)
Temperature, from the first main-phase batch (the switch step s):
    tau(g) = temp_start (temp_end / temp_start)^min(1, (g - s) / temp_decay_steps)
At the switch the main loss's queue is reset (warmup-era logits never reach
the ranking).

Two behaviours follow the successor rather than the seed, which it fixed:
``gather_distributed`` is written to the main loss only when it is not None
(0.1.3 always overwrote it, so an explicit False on the main loss was lost),
and keyword arguments (e.g. ``return_per_class=True``) reach the main loss in
the blend too (0.1.3 dropped them there); a tuple result is blended on its
first element.

Across processes the wrapper gathers nothing itself: each loss gathers
according to its own ``gather_distributed`` (the main loss's set from the
wrapper's when given, the warmup loss's its own, as in the successor). With
proxyloss losses on both sides (e.g. SoftmaxFocalLoss then SmoothAPLoss)
every phase is then the single-process loss of the concatenated batch,
gradient included under DistributedDataParallel; a plain torch loss (e.g.
``nn.CrossEntropyLoss``) as the warmup loss computes on each rank's batch.
Every rank must drive the schedule alike (the same hook calls), or the ranks'
temperatures differ and the main loss raises.
"""
import inspect
import math
import numbers
import warnings

from torch import nn

from proxyloss._distributed import check_gather_option


def _as_count(value, what, allow_none=False):
    """An epoch or step count >= 0 as an int; a float of integer value (2.0,
    5e4) is taken, as the seeds take it."""
    if value is None and allow_none:
        return None
    if (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value) and value == int(value) and value >= 0):
        return int(value)
    raise ValueError(f"LossWarmupWrapper: {what} must be a whole number >= 0, got {value!r}")


def _accepts_sample_weight(loss):
    """Whether ``loss`` takes a ``sample_weight`` keyword (or **kwargs)."""
    target = loss.forward if isinstance(loss, nn.Module) else loss
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return any((p.name == "sample_weight" and p.kind is not p.VAR_POSITIONAL)
               or p.kind is p.VAR_KEYWORD for p in parameters)


class LossWarmupWrapper(nn.Module):
    """Call ``on_train_epoch_start(epoch)`` at the start of every epoch and
    ``on_train_batch_start(global_step)`` before every training step (from
    PyTorch Lightning's hooks of the same names, or from your loop)."""

    def __init__(self, warmup_loss, main_loss, warmup_epochs=0, temp_start=0.05,
                 temp_end=0.005, temp_decay_steps=10_000, *, blend_epochs=0,
                 warmup_steps=None, blend_steps=None, final_main_weight=1.0,
                 reset_queue_each_epoch=False, gather_distributed=None):
        super().__init__()
        if not callable(warmup_loss) or not callable(main_loss):
            raise TypeError("LossWarmupWrapper: warmup_loss and main_loss must be callable")
        warmup_epochs = _as_count(warmup_epochs, "warmup_epochs")
        blend_epochs = _as_count(blend_epochs, "blend_epochs")
        warmup_steps = _as_count(warmup_steps, "warmup_steps", allow_none=True)
        blend_steps = _as_count(blend_steps, "blend_steps", allow_none=True)
        if warmup_steps is not None and warmup_epochs != 0:
            raise ValueError("LossWarmupWrapper: give warmup_epochs (epoch mode) or "
                             "warmup_steps (step mode), not both")
        if blend_steps is not None and blend_epochs != 0:
            raise ValueError("LossWarmupWrapper: give blend_epochs or blend_steps, not both")
        if blend_steps is not None and warmup_steps is None:
            raise ValueError("LossWarmupWrapper: blend_steps needs warmup_steps (step "
                             "mode); in epoch mode use blend_epochs")
        temp_start, temp_end = float(temp_start), float(temp_end)
        if not (math.isfinite(temp_start) and math.isfinite(temp_end)
                and temp_start > 0 and temp_end > 0):
            raise ValueError("LossWarmupWrapper: temp_start and temp_end must be finite "
                             f"and > 0, got {temp_start} and {temp_end}")
        # A real number of steps > 0, as the seeds (only divided by).
        if (isinstance(temp_decay_steps, bool) or not isinstance(temp_decay_steps, numbers.Real)
                or not math.isfinite(temp_decay_steps) or temp_decay_steps <= 0):
            raise ValueError("LossWarmupWrapper: temp_decay_steps must be a finite number "
                             f"> 0, got {temp_decay_steps!r}")
        final_main_weight = float(final_main_weight)
        if not 0 < final_main_weight <= 1:
            raise ValueError("LossWarmupWrapper: final_main_weight must be in (0, 1], "
                             f"got {final_main_weight}")
        check_gather_option("LossWarmupWrapper", gather_distributed)
        self.warmup_loss = warmup_loss
        self.main_loss = main_loss
        self.warmup_epochs = warmup_epochs
        self.blend_epochs = blend_epochs
        self._step_mode = warmup_steps is not None
        self.warmup_steps = int(warmup_steps or 0)
        self.blend_steps = int(blend_steps or 0)
        self.temp_start = temp_start
        self.temp_end = temp_end
        self.temp_decay_steps = temp_decay_steps
        self.final_main_weight = final_main_weight
        self.reset_queue_each_epoch = reset_queue_each_epoch
        if gather_distributed is not None and hasattr(main_loss, "gather_distributed"):
            main_loss.gather_distributed = gather_distributed
        self._has_temperature = hasattr(main_loss, "temperature")
        self._has_reset_queue = callable(getattr(main_loss, "reset_queue", None))
        self._warmup_takes_sample_weight = _accepts_sample_weight(warmup_loss)
        if not self._has_temperature:
            warnings.warn(f"LossWarmupWrapper: {type(main_loss).__name__} has no "
                          "'temperature' attribute; the temperature schedule is skipped.",
                          UserWarning, stacklevel=2)
        if reset_queue_each_epoch and not self._has_reset_queue:
            warnings.warn(f"LossWarmupWrapper: {type(main_loss).__name__} has no "
                          "'reset_queue' method; reset_queue_each_epoch has no effect.",
                          UserWarning, stacklevel=2)
        self._epoch = 0
        self._global_step = 0
        # The global step of the first main-phase batch; -1 once the main
        # phase has begun but no batch hook has latched it; None before.
        self._switch_step = None
        self._batch_hook_seen = False
        self._warned_no_batch_hook = False
        if (self.warmup_steps if self._step_mode else self.warmup_epochs) == 0:
            self._switch_step = 0
            self._set_temperature(self.temp_start)

    # --- the schedule -----------------------------------------------------------

    def _phase_clock(self):
        """(t, W, B): the schedule's clock and its warmup and blend lengths."""
        if self._step_mode:
            return self._global_step, self.warmup_steps, self.blend_steps
        return self._epoch, self.warmup_epochs, self.blend_epochs

    @property
    def in_warmup(self):
        """True while only the warmup loss is used."""
        t, warmup, _ = self._phase_clock()
        return t < warmup

    @property
    def in_blend(self):
        """True while the two losses are blended with a rising weight."""
        t, warmup, blend = self._phase_clock()
        return warmup <= t < warmup + blend

    @property
    def main_weight(self):
        """The main loss's weight w: 0 in warmup, rising in the blend,
        final_main_weight after."""
        t, warmup, blend = self._phase_clock()
        if t < warmup:
            return 0.0
        if t >= warmup + blend:
            return self.final_main_weight
        return (t - warmup + 1) / (blend + 1) * self.final_main_weight

    @property
    def ap_weight(self):
        """proxy-losses 0.1.3's name for main_weight."""
        return self.main_weight

    @property
    def current_temperature(self):
        """The main loss's temperature, or None when it has none."""
        if not self._has_temperature:
            return None
        return float(self.main_loss.temperature)

    def _set_temperature(self, temperature):
        if self._has_temperature:
            self.main_loss.temperature = temperature

    def _reset_main_queue(self):
        if self._has_reset_queue:
            self.main_loss.reset_queue()

    def on_train_epoch_start(self, epoch):
        """Sets the epoch (0-based, Lightning's ``current_epoch``); in the main
        phase, resets the queue when ``reset_queue_each_epoch``."""
        self._epoch = int(epoch)
        if self.in_warmup:
            return
        if not self._step_mode and self._switch_step is None:
            self._switch_step = -1  # latched by the next batch hook
        if self.reset_queue_each_epoch:
            self._reset_main_queue()

    def on_train_batch_start(self, global_step):
        """Before every training step (Lightning's ``global_step``): latches the
        phase switch (temperature temp_start, queue reset) on the first
        main-phase step, then decays the temperature."""
        global_step = int(global_step)
        self._batch_hook_seen = True
        if self._step_mode:
            self._global_step = global_step
            if not self.in_warmup and self._switch_step is None:
                self._switch_step = -1
        if self.in_warmup or self._switch_step is None:
            return
        if self._switch_step == -1:
            self._switch_step = global_step
            self._set_temperature(self.temp_start)
            self._reset_main_queue()
            return
        progress = min(1.0, (global_step - self._switch_step) / self.temp_decay_steps)
        self._set_temperature(self.temp_start *
                              math.exp(progress * math.log(self.temp_end / self.temp_start)))

    # --- state_dict: the schedule (the successor's _extra_state format) ---------

    def get_extra_state(self):
        return {"epoch": self._epoch, "global_step": self._global_step,
                "switch_step": self._switch_step, "batch_hook_seen": self._batch_hook_seen,
                "temperature": self.current_temperature}

    def set_extra_state(self, state):
        self._epoch = state.get("epoch", self._epoch)
        self._global_step = state.get("global_step", self._global_step)
        self._switch_step = state.get("switch_step", self._switch_step)
        self._batch_hook_seen = state.get("batch_hook_seen", self._batch_hook_seen)
        if state.get("temperature") is not None:
            self._set_temperature(state["temperature"])

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        # A proxy-losses 0.1.3 checkpoint has no schedule state: keep ours.
        state_dict.setdefault(prefix + "_extra_state", self.get_extra_state())
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    # --- forward ------------------------------------------------------------------

    def _warmup_kwargs(self, kwargs):
        if self._warmup_takes_sample_weight and "sample_weight" in kwargs:
            return {"sample_weight": kwargs["sample_weight"]}
        return {}

    def forward(self, logits, targets, **kwargs):
        """The active loss (or blend) of ``(logits, targets)``; ``kwargs`` go to
        the main loss (the warmup loss gets only ``sample_weight``, when it
        takes it)."""
        if self.in_warmup:
            return self.warmup_loss(logits, targets, **self._warmup_kwargs(kwargs))
        if (self._has_temperature and not self._batch_hook_seen
                and not self._warned_no_batch_hook):
            self._warned_no_batch_hook = True
            warnings.warn(
                f"LossWarmupWrapper: on_train_batch_start() was never called in the main "
                f"phase, so {type(self.main_loss).__name__}'s temperature does not decay "
                "towards temp_end; call on_train_batch_start(global_step) before every "
                "training step (in epoch mode too). (This warning is shown once per "
                "instance.)", UserWarning, stacklevel=2)
        w = self.main_weight
        if w >= 1.0:
            return self.main_loss(logits, targets, **kwargs)
        warmup_out = self.warmup_loss(logits, targets, **self._warmup_kwargs(kwargs))
        if isinstance(warmup_out, tuple):
            warmup_out = warmup_out[0]
        main_out = self.main_loss(logits, targets, **kwargs)
        if isinstance(main_out, tuple):
            return ((1 - w) * warmup_out + w * main_out[0],) + tuple(main_out[1:])
        return (1 - w) * warmup_out + w * main_out

    def extra_repr(self):
        if self._step_mode:
            phases = f"warmup_steps={self.warmup_steps}, blend_steps={self.blend_steps}"
        else:
            phases = f"warmup_epochs={self.warmup_epochs}, blend_epochs={self.blend_epochs}"
        return (f"{phases}, temp_start={self.temp_start}, temp_end={self.temp_end}, "
                f"temp_decay_steps={self.temp_decay_steps}, "
                f"final_main_weight={self.final_main_weight}")
