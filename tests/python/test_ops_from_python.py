"""The ranking losses from Python with nothing but torch.ops.proxyloss.*.

module_steps (a C++ program, tests/python/module_steps.cpp) runs the C++
SmoothAPLoss / RecallAtQuantileLoss modules over several training steps with
a memory queue and writes every input and result. This test repeats each
step as a Python module would: it holds the queue buffers, calls the loss
op, and pushes the batch with queue_push_ unless the op's events say the
batch held non-finite logits or the pool was empty. Values, gradients and
the final queue must equal the C++ modules' bit for bit.

Environment: PROXYLOSS_LIBRARY (libproxyloss.so), PROXYLOSS_MODULE_STEPS
(the module_steps program); CTest sets both.
"""
import os
import subprocess

import numpy as np
import pytest
import torch

torch.ops.load_library(os.environ["PROXYLOSS_LIBRARY"])
ops = torch.ops.proxyloss

NON_FINITE, UNEXPECTED_BINARY, SUBSAMPLED, EMPTY_POOL = range(4)
DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "bool": np.bool_}


def read_results(folder):
    tensors = {}
    with open(os.path.join(folder, "manifest.txt")) as manifest:
        for line in manifest:
            name, dtype, shape = (line.split() + [""])[:3]
            dims = [int(d) for d in shape.split(",") if d]
            data = np.fromfile(os.path.join(folder, name + ".bin"), dtype=DTYPES[dtype])
            tensors[name] = torch.from_numpy(data.reshape(dims))
    return tensors


@pytest.fixture(scope="module")
def cpp(tmp_path_factory):
    folder = tmp_path_factory.mktemp("module_steps")
    subprocess.run([os.environ["PROXYLOSS_MODULE_STEPS"], str(folder)], check=True)
    return read_results(folder)


class PythonQueue:
    """The three queue buffers a module registers (float32 logits, as the seed)."""

    def __init__(self, size, num_classes, ignore_index=-100):
        self.logits = torch.zeros(size, num_classes)
        self.targets = torch.full((size,), ignore_index, dtype=torch.long)
        self.ptr = torch.zeros(1, dtype=torch.long)


def run_steps(cpp, prefix, loss_op, queue, steps):
    for step in range(steps):
        tag = f"{prefix}_{step}"
        logits = cpp[tag + "_logits"].clone().requires_grad_(True)
        targets = cpp[tag + "_targets"]
        loss, per_class, valid, events = loss_op(logits, targets, queue.logits, queue.targets)
        loss.sum().backward()
        assert torch.equal(loss.detach(), cpp[tag + "_loss"]) or (
            torch.isnan(loss).all() and torch.isnan(cpp[tag + "_loss"]).all()
        ), tag
        torch.testing.assert_close(per_class, cpp[tag + "_per_class"], rtol=0, atol=0,
                                   equal_nan=True)
        assert torch.equal(valid, cpp[tag + "_valid"]), tag
        torch.testing.assert_close(logits.grad, cpp[tag + "_grad"], rtol=0, atol=0,
                                   equal_nan=True)
        if not events[NON_FINITE] and not events[EMPTY_POOL]:
            ops.queue_push_(queue.logits, queue.targets, queue.ptr, logits, targets)
    assert torch.equal(queue.logits, cpp[prefix + "_queue_logits"])
    assert torch.equal(queue.targets, cpp[prefix + "_queue_targets"])
    assert torch.equal(queue.ptr, cpp[prefix + "_queue_ptr"])


def test_smooth_ap_loss_matches_the_cpp_module(cpp):
    def op(logits, targets, q_logits, q_targets):
        return ops.smooth_ap_loss(logits, targets, q_logits, q_targets, 3, 0.05, "mean",
                                  -100, None)

    run_steps(cpp, "smooth_ap", op, PythonQueue(40, 3), steps=5)


def test_binary_smooth_ap_loss_matches_the_cpp_module(cpp):
    def op(logits, targets, q_logits, q_targets):
        return ops.smooth_ap_loss(logits, targets, q_logits, q_targets, 1, 0.01, "none",
                                  -100, None)

    run_steps(cpp, "smooth_ap_binary", op, PythonQueue(30, 1), steps=5)


def test_recall_at_quantile_loss_matches_the_cpp_module(cpp):
    def op(logits, targets, q_logits, q_targets):
        return ops.recall_at_quantile_loss(logits, targets, q_logits, q_targets, 2, 0.1,
                                           "linear", 0.02, "sum", -100, None)

    run_steps(cpp, "recall", op, PythonQueue(50, 2), steps=5)


def test_per_class_ops_are_reachable_and_differentiable():
    scores = torch.randn(30, 2, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(-1, 2, (30,))
    thresholds = ops.selection_quantile(scores.detach(), 0.9, "higher")
    assert torch.equal(thresholds, torch.quantile(scores.detach(), 0.9, dim=0,
                                                  interpolation="higher"))
    recall = ops.soft_recall(scores, labels, thresholds, 0.1)
    ap = ops.smooth_ap(scores, labels, 0.1)
    (recall.nansum() + ap.nansum()).backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()


def test_double_backward_raises_a_clear_error():
    scores = torch.randn(20, 2, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 2, (20,))
    ap = ops.smooth_ap(scores, labels, 0.1).sum()
    (grad,) = torch.autograd.grad(ap, scores, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiable once"):
        grad.sum().backward()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
@pytest.mark.parametrize("max_pool_size", [None, 30])
def test_ranking_pool_passes_each_pool_row_gradient_to_its_live_row(dtype, max_pool_size):
    """The pool's gradient reaches the live logits through each live row's
    pool position (a gather), zero for rows not in the pool (ignore_index,
    or not drawn by the subsample), nothing for the detached queue; in the
    logits' dtype. Oracle: the gradient of a weighted sum of the pool's scores,
    sum_p w[p] * scores[p, c], is w at each live row's pool row."""
    torch.manual_seed(6)
    logits = torch.randn(40, 3, dtype=dtype, requires_grad=True)
    targets = torch.randint(0, 3, (40,))
    targets[::4] = -100
    q_logits, q_targets = torch.randn(12, 3), torch.randint(0, 3, (12,))
    torch.manual_seed(7)
    scores, labels, events, pool_weights = ops.ranking_pool(logits, targets, q_logits,
                                                            q_targets, 3, -100, max_pool_size)
    assert torch.equal(pool_weights, torch.ones(len(scores), dtype=scores.dtype))
    assert scores.dtype == (torch.float32 if dtype == torch.float16 else dtype)
    weights = torch.randn(scores.shape, dtype=scores.dtype)
    (scores * weights).sum().backward()
    # Each live row's pool row, found by its (unique) values.
    want = torch.zeros(40, 3, dtype=scores.dtype)
    for n in range(40):
        match = (scores.detach() == logits.detach()[n].to(scores.dtype)).all(1).nonzero()
        if targets[n] != -100 and len(match):
            want[n] = weights[match[0, 0]]
    assert logits.grad.dtype == dtype
    torch.testing.assert_close(logits.grad, want.to(dtype), rtol=0, atol=0)
    assert bool(events[2]) == (max_pool_size is not None)
    if dtype == torch.float64:
        def pooled(x):
            torch.manual_seed(7)  # the same subsample at every evaluation
            return ops.ranking_pool(x, targets, q_logits, q_targets, 3, -100,
                                    max_pool_size)[0]
        assert torch.autograd.gradcheck(pooled, (logits.detach().requires_grad_(),))
