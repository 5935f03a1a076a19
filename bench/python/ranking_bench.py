#!/usr/bin/env python3
"""Forward + backward of proxyloss's Python ranking modules against the seed's
(proxy-losses 0.1.3, import name ``proxy_losses``), in the same process.

Cases: M = 4,096 / 16,384 / 65,536 rows (queue_size=0, so M is the live
batch), C = 1 (5 % positives) and C = 4 (one majority class: classes 1..3
take M // 20 rows each, class 0 the rest, ~85 %), temperature 0.01 and 0.5,
and two score regimes, as in bench/smooth_ap_bench.cpp:

- ``unseparated``: every logit randn, positives drawn as the negatives (the
  start of training);
- ``separated``: the positives' logit in their own class column is one unit
  higher (randn + 1), the C++ benchmarks' workload.

One step is ``x.grad = None; loss = module(x, targets); loss.backward()`` on
a float32 leaf ``x`` [M, C]. Both modules are timed in the same process,
interleaved in rounds (ours, seed, ours, seed, ...), after one warmup step
each; the result is the median step time. The seed's SmoothAPLoss builds
[P, M] pairwise matrices per class (O(P M) memory): cases whose estimate
exceeds --memory-cap-gb are skipped, not run.

Peak RSS: each (case, implementation) is run again in a fresh process
(``--single-case CASE --implementation ours|seed``), which prints its
ru_maxrss after the imports (baseline) and after the steps (peak).

Python overhead: at M = 4,096, C = 1 the Python module is timed against the
C++ module (proxyloss::SmoothAPLoss, include/proxyloss/smooth_ap_loss.h) in
the same process: a small binding compiled with
torch.utils.cpp_extension.load_inline into a temporary directory, linked with
the libproxyloss.so the Python package has loaded, runs the same steps in a
C++ loop and times each with std::chrono.

The environment chooses the package: ``PYTHONPATH=python
PROXYLOSS_LIBRARY=build/libproxyloss.so`` for a development tree
(bench/python/run_python_benchmarks.sh sets them), nothing for an installed
one.
"""
import argparse
import atexit
import datetime
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch

LOSSES = ("smooth_ap", "recall")
LOSS_NAMES = {"smooth_ap": "SmoothAPLoss", "recall": "RecallAtQuantileLoss"}
SCORES = ("unseparated", "separated")
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))


# ----------------------------------------------------------------------------
# Cases and inputs
# ----------------------------------------------------------------------------

def csv_of(kind):
    def parse(text):
        return [kind(item) for item in text.split(",") if item.strip()]
    return parse


def case_key(case):
    """The --single-case spelling of a case: loss:M:C:tau:scores:pos_rate."""
    return ":".join(str(case[k]) for k in ("loss", "M", "C", "tau", "scores", "pos_rate"))


def parse_case(text):
    loss, M, C, tau, scores, pos_rate = text.split(":")
    if loss not in LOSSES or scores not in SCORES:
        raise ValueError(f"bad case {text!r}")
    return {"loss": loss, "M": int(M), "C": int(C), "tau": float(tau), "scores": scores,
            "pos_rate": float(pos_rate)}


def class_sizes(case):
    """Rows per positive class: C = 1, the positives (max(1, M * rate));
    C = 4, class 0 takes what classes 1..C-1 (M // 20 each) leave."""
    M, C = case["M"], case["C"]
    if C == 1:
        return [max(1, int(M * case["pos_rate"]))]
    sizes = [M // 20] * C
    sizes[0] = M - (C - 1) * (M // 20)
    return sizes


def positives_label(case):
    if case["C"] == 1:
        return f"{case['pos_rate'] * 100:g} %"
    return "majority class"


def make_inputs(case, seed=0):
    """Deterministic logits [M, C] float32 and targets [M] int64 (class ids;
    0/1 in binary mode), from a fixed seed."""
    M, C = case["M"], case["C"]
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(M, generator=gen)
    sizes = class_sizes(case)
    if C == 1:
        targets = torch.zeros(M, dtype=torch.long)
        targets[perm[:sizes[0]]] = 1
        positive_column = torch.zeros(M, dtype=torch.long)
    else:
        targets = torch.empty(M, dtype=torch.long)
        offset = 0
        for k, size in enumerate(sizes):
            targets[perm[offset:offset + size]] = k
            offset += size
        positive_column = targets
    logits = torch.randn(M, C, generator=gen)
    if case["scores"] == "separated":
        rows = torch.arange(M) if C > 1 else targets.nonzero().squeeze(1)
        logits[rows, positive_column[rows]] += 1.0
    return logits, targets


def seed_bytes_estimate(case, bytes_per_pair):
    """The seed's SmoothAPLoss keeps, per class, [P, M] float32 matrices (the
    sigmoid, the masked copy, the mask) for backward and makes more while it
    runs: bytes_per_pair * sum_c P_c * M. RecallAtQuantileLoss: O(M)."""
    if case["loss"] != "smooth_ap":
        return 64 * case["M"] * case["C"]
    return bytes_per_pair * sum(class_sizes(case)) * case["M"]


# ----------------------------------------------------------------------------
# Modules and steps
# ----------------------------------------------------------------------------

def import_implementation(impl):
    if impl == "ours":
        import proxyloss
        return proxyloss
    import proxy_losses
    return proxy_losses


def make_module(package, case, quantile):
    C, tau = case["C"], case["tau"]
    if case["loss"] == "smooth_ap":
        return package.SmoothAPLoss(C, queue_size=0, temperature=tau)
    return package.RecallAtQuantileLoss(C, quantile=quantile, queue_size=0, temperature=tau)


def step(module, x, targets):
    """One forward + backward; returns (seconds, loss value)."""
    x.grad = None
    start = time.perf_counter()
    loss = module(x, targets)
    loss.backward()
    elapsed = time.perf_counter() - start
    return elapsed, loss


def timed_round(module, x, targets, seconds, max_steps):
    """Steps until `seconds` have passed (at least one, at most max_steps);
    returns the step times."""
    times = []
    start = time.perf_counter()
    while not times or (time.perf_counter() - start < seconds and len(times) < max_steps):
        times.append(step(module, x, targets)[0])
    return times


def reps_per_round(seconds_per_step, seconds, max_reps):
    return min(max_reps, max(1, math.ceil(seconds / max(seconds_per_step, 1e-9))))


def median_ms(times):
    return statistics.median(times) * 1e3


# ----------------------------------------------------------------------------
# In-process timing: ours vs seed
# ----------------------------------------------------------------------------

def time_case(case, ours_pkg, seed_pkg, args):
    """Times ours and the seed on one case, interleaved. Returns a result dict."""
    logits, targets = make_inputs(case)
    result = {"case": case, "positives": sum(class_sizes(case)) if case["C"] == 1 else None}
    ours = make_module(ours_pkg, case, args.quantile)
    x_ours = logits.clone().requires_grad_(True)
    warm_ours, loss_ours = step(ours, x_ours, targets)
    result["loss_ours"] = float(loss_ours)

    need = seed_bytes_estimate(case, args.seed_bytes_per_pair)
    result["seed_estimate_gb"] = need / 1e9
    run_seed = need <= args.memory_cap_gb * 1e9 and not args.no_seed
    seed = x_seed = None
    seed_times = []
    slow_seed = False
    if run_seed:
        seed = make_module(seed_pkg, case, args.quantile)
        x_seed = logits.clone().requires_grad_(True)
        warm_seed, loss_seed = step(seed, x_seed, targets)
        result["loss_seed"] = float(loss_seed)
        del loss_seed
        # A step over --slow-seconds is dominated by its own work (fresh
        # memory every step): its warmup counts as the first repetition.
        slow_seed = warm_seed > args.slow_seconds
        if slow_seed:
            seed_times.append(warm_seed)
    else:
        result["seed_skipped"] = (f"skipped (would need {need / 1e9:.1f} GB)"
                                  if not args.no_seed else "not run (--no-seed)")

    # Interleaved rounds: each round gives each implementation at least
    # min_time / rounds seconds of steps (at least one step). A slow seed
    # (warmup counted) gets one step in each of the first rounds - 1 rounds.
    rounds = args.min_reps
    per_round = args.min_time / rounds
    cap = max(1, args.max_reps // rounds)
    ours_times = []
    for r in range(rounds):
        ours_times += timed_round(ours, x_ours, targets, per_round, cap)
        if run_seed:
            if slow_seed:
                if len(seed_times) < rounds:
                    seed_times.append(step(seed, x_seed, targets)[0])
            else:
                seed_times += timed_round(seed, x_seed, targets, per_round, cap)
    result["ours_ms"] = median_ms(ours_times)
    result["ours_reps"] = len(ours_times)
    if run_seed:
        result["seed_ms"] = median_ms(seed_times)
        result["seed_reps"] = len(seed_times)
        result["seed_warmup_counted"] = slow_seed
        result["speedup"] = result["seed_ms"] / result["ours_ms"]
        result["loss_abs_diff"] = abs(result["loss_ours"] - result["loss_seed"])
    return result


# ----------------------------------------------------------------------------
# Peak RSS: one case, one implementation, in this (fresh) process
# ----------------------------------------------------------------------------

def maxrss_mib():
    # Linux: ru_maxrss is in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def single_case(args):
    case = parse_case(args.single_case)
    package = import_implementation(args.implementation)
    baseline = maxrss_mib()
    logits, targets = make_inputs(case)
    module = make_module(package, case, args.quantile)
    x = logits.clone().requires_grad_(True)
    steps = args.rss_steps
    if args.implementation == "seed" and seed_bytes_estimate(case, 4) > (1 << 30):
        steps = 1  # seconds per step; the peak is reached by the first one
    start = time.perf_counter()
    for _ in range(steps):
        step(module, x, targets)
    elapsed = time.perf_counter() - start
    print(json.dumps({"case": case, "implementation": args.implementation,
                      "baseline_rss_mib": baseline, "peak_rss_mib": maxrss_mib(),
                      "vm_hwm_mib": vm_hwm_mib(),
                      "steps": steps, "seconds": elapsed}))


def vm_hwm_mib():
    """This process's own high-water RSS (/proc/self/status VmHWM, Linux),
    which, unlike ru_maxrss, does not carry over from a parent."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def measure_rss(case, impl, args):
    command = [sys.executable, os.path.abspath(__file__), "--single-case", case_key(case),
               "--implementation", impl, "--threads", str(args.threads),
               "--quantile", repr(args.quantile), "--rss-steps", str(args.rss_steps)]
    # Linux keeps ru_maxrss across fork and exec: a child of this (large)
    # process would start at its peak. A child of a small shell started in
    # the background does not (its fork copies only the shell).
    if os.path.exists("/bin/sh"):
        command = ["/bin/sh", "-c", '"$@" & wait $!', "sh"] + command
    proc = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------
# Python overhead: our Python module vs our C++ module, same process
# ----------------------------------------------------------------------------

CPP_BINDING = r"""
#include <torch/extension.h>

#include <proxyloss/recall_at_quantile_loss.h>
#include <proxyloss/smooth_ap_loss.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

template <typename Loss>
std::vector<double> timed_steps(Loss& loss, const torch::Tensor& logits,
                                const torch::Tensor& targets, int64_t steps) {
  auto x = logits.detach().clone().requires_grad_(true);
  std::vector<double> seconds;
  seconds.reserve(steps);
  for (int64_t i = 0; i < steps; ++i) {
    x.mutable_grad() = torch::Tensor();
    const auto start = std::chrono::steady_clock::now();
    auto value = loss->forward(x, targets);
    value.backward();
    const auto stop = std::chrono::steady_clock::now();
    seconds.push_back(std::chrono::duration<double>(stop - start).count());
  }
  return seconds;
}

} // namespace

// Per-step seconds of `steps` forward + backward steps of the C++ module
// (queue_size 0), the module constructed once before the loop.
std::vector<double> cpp_module_steps(torch::Tensor logits, torch::Tensor targets,
                                     std::string loss_name, int64_t num_classes,
                                     double temperature, double quantile, int64_t steps) {
  // LibTorch's autograd engine must not be entered holding the GIL.
  pybind11::gil_scoped_release no_gil;
  if (loss_name == "smooth_ap") {
    proxyloss::SmoothAPLoss loss(
        proxyloss::SmoothAPLossOptions(num_classes).queue_size(0).temperature(temperature));
    return timed_steps(loss, logits, targets, steps);
  }
  if (loss_name == "recall") {
    proxyloss::RecallAtQuantileLoss loss(proxyloss::RecallAtQuantileLossOptions(num_classes)
                                             .queue_size(0)
                                             .temperature(temperature)
                                             .quantile(quantile));
    return timed_steps(loss, logits, targets, steps);
  }
  throw std::invalid_argument("unknown loss " + loss_name);
}
"""


def loaded_library_path():
    """The libproxyloss.so that `import proxyloss` loaded (PROXYLOSS_LIBRARY or
    the package's own copy)."""
    from proxyloss import _ops
    return os.path.abspath(_ops._library_path())


def build_cpp_module(args, log):
    """Compiles the binding into a temporary directory; returns (module, info)
    or (None, reason)."""
    from torch.utils import cpp_extension

    library = os.path.abspath(args.cpp_library) if args.cpp_library else loaded_library_path()
    include = os.path.abspath(args.cpp_include)
    if not os.path.exists(os.path.join(include, "proxyloss", "smooth_ap_loss.h")):
        return None, f"headers not found under {include} (--cpp-include)"
    if not os.path.exists(library):
        return None, f"library not found: {library} (--cpp-library)"
    build_dir = tempfile.mkdtemp(prefix="proxyloss_cpp_module_")
    # The loaded binding stays mapped; its files go when the run ends.
    atexit.register(shutil.rmtree, build_dir, ignore_errors=True)
    log(f"compiling the C++ module binding in {build_dir} (about a minute) ...")
    start = time.perf_counter()
    try:
        # Linked by path: the binding's DT_NEEDED is the library's soname, so
        # the dynamic loader reuses the copy torch.ops.load_library loaded
        # (one set of registered ops).
        module = cpp_extension.load_inline(
            name="proxyloss_bench_cpp_module",
            cpp_sources=[CPP_BINDING],
            functions=["cpp_module_steps"],
            extra_include_paths=[include],
            extra_cflags=["-O2"],
            extra_ldflags=[library, f"-Wl,-rpath,{os.path.dirname(library)}"],
            build_directory=build_dir,
            verbose=False,
        )
    except Exception as error:  # compiler missing, headers out of date, ...
        return None, f"building the C++ binding failed: {str(error).strip().splitlines()[-1]}"
    log(f"  compiled in {time.perf_counter() - start:.0f} s")
    return module, {"library": library, "include": include, "build_dir": build_dir}


def time_overhead(ours_pkg, cpp_module, case, args):
    """Our Python module vs our C++ module on one case, interleaved rounds."""
    logits, targets = make_inputs(case)
    module = make_module(ours_pkg, case, args.quantile)
    x = logits.clone().requires_grad_(True)

    def cpp_steps(n):
        return list(cpp_module.cpp_module_steps(logits, targets, case["loss"], case["C"],
                                                case["tau"], args.quantile, n))

    # Warmup, and the step counts of a round (overhead_time / rounds seconds
    # each) from the warmup's median.
    warm_py = statistics.median([step(module, x, targets)[0] for _ in range(20)])
    warm_cpp = statistics.median(cpp_steps(20))
    rounds = max(args.min_reps, 5)
    n_py = reps_per_round(warm_py, args.overhead_time / rounds, 100000)
    n_cpp = reps_per_round(warm_cpp, args.overhead_time / rounds, 100000)
    py_times, cpp_times = [], []
    for _ in range(rounds):
        cpp_times += cpp_steps(n_cpp)
        for _ in range(n_py):
            py_times.append(step(module, x, targets)[0])
    py_ms, cpp_ms = median_ms(py_times), median_ms(cpp_times)
    return {"case": case, "python_ms": py_ms, "cpp_ms": cpp_ms, "ratio": py_ms / cpp_ms,
            "python_reps": len(py_times), "cpp_reps": len(cpp_times)}


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info(args, ours_pkg, seed_pkg):
    try:
        from importlib.metadata import version
        seed_version = version("proxy-losses")
    except Exception:
        seed_version = getattr(seed_pkg, "__version__", "?")
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "torch": torch.__version__,
        "proxyloss": getattr(ours_pkg, "__version__", "?"),
        "proxyloss_path": os.path.dirname(ours_pkg.__file__),
        "library": loaded_library_path(),
        "seed": seed_version,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def fmt_ms(value):
    if value is None:
        return ""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_rss(rss):
    if not rss:
        return ""
    if "error" in rss:
        return "failed"
    increase = rss["peak_rss_mib"] - rss["baseline_rss_mib"]
    return f"{rss['peak_rss_mib']:.0f} (+{increase:.0f})"


def markdown(machine, results, overhead, overhead_note, args, wall):
    lines = []
    lines.append("Python modules, forward + backward: proxyloss vs the seed (proxy-losses "
                 f"{machine['seed']}), measured {machine['date']}")
    lines.append("")
    lines.append(f"- Machine: {machine['cpu']}, {machine['cores']} cores; "
                 f"{machine['threads']} threads (torch.set_num_threads), OMP_WAIT_POLICY="
                 f"{machine['omp_wait_policy']}; torch {machine['torch']}, Python "
                 f"{machine['python']}; proxyloss {machine['proxyloss']} "
                 f"({machine['library']})")
    lines.append("- Workload: queue_size=0, logits [M, C] float32 from a fixed seed; C = 1: "
                 f"{args.pos_rates[0] * 100:g} % positives"
                 + (" (and " + ", ".join(f"{p * 100:g} %" for p in args.pos_rates[1:]) + ")"
                    if len(args.pos_rates) > 1 else "")
                 + "; C = 4: class 0 ~85 %, classes 1..3 M // 20 rows each. Scores "
                 "unseparated: randn for all; separated: positives +1 in their class column. "
                 "One step: forward, then loss.backward().")
    lines.append(f"- Time: median step of the same process, ours and the seed interleaved, "
                 f"after a warmup step, at least {args.min_reps} rounds and {args.min_time:g} s "
                 f"per implementation (seed steps over {args.slow_seconds:g} s: "
                 f"{args.min_reps} steps, the warmup counted). Peak RSS: ru_maxrss of a fresh "
                 "process running that case alone (started from a small shell, so it does not "
                 "inherit this process's ru_maxrss), MiB, in parentheses the growth over that "
                 "process after its imports.")
    skipped = [r for r in results if "seed_skipped" in r]
    if skipped:
        lines.append("- Seed not run where its [P, M] matrices would exceed "
                     f"{args.memory_cap_gb:g} GB (estimate {args.seed_bytes_per_pair:g} "
                     "bytes per (positive, row) pair).")
    lines.append("")
    lines.append("| loss | M | C | positives | tau | scores | ours (ms) | seed (ms) | speedup "
                 "| ours peak RSS (MiB) | seed peak RSS (MiB) |")
    lines.append("|---|---:|---:|---|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        c = r["case"]
        seed_ms = fmt_ms(r.get("seed_ms")) if "seed_ms" in r else r.get("seed_skipped", "")
        speedup = f"{r['speedup']:.0f}x" if r.get("speedup", 0) >= 10 else (
            f"{r['speedup']:.1f}x" if "speedup" in r else "")
        lines.append(f"| {LOSS_NAMES[c['loss']]} | {c['M']} | {c['C']} | "
                     f"{positives_label(c)} | {c['tau']:g} | {c['scores']} | "
                     f"{fmt_ms(r['ours_ms'])} | {seed_ms} | {speedup} | "
                     f"{fmt_rss(r.get('rss_ours'))} | {fmt_rss(r.get('rss_seed'))} |")
    lines.append("")

    # Targets of the issue.
    target = [r for r in results if r["case"]["loss"] == "smooth_ap" and
              r["case"]["M"] == 16384 and r["case"]["C"] == 4 and "speedup" in r]
    if target:
        worst = min(target, key=lambda r: r["speedup"])
        verdict = "met" if worst["speedup"] >= 100 else "NOT met"
        lines.append(f"- SmoothAPLoss, M = 16384, C = 4: speedup {worst['speedup']:.0f}x at "
                     f"worst (tau {worst['case']['tau']:g}, {worst['case']['scores']}) over "
                     f"{len(target)} cases; target >= 100x: {verdict}.")

    if overhead:
        lines.append("")
        lines.append("Python overhead: our Python module vs our C++ module, same process "
                     "(the C++ module through a load_inline binding timing each step with "
                     "std::chrono; median step of interleaved rounds):")
        lines.append("")
        lines.append("| loss | M | C | positives | tau | scores | Python module (ms) | "
                     "C++ module (ms) | Python / C++ |")
        lines.append("|---|---:|---:|---|---:|---|---:|---:|---:|")
        for o in overhead:
            c = o["case"]
            lines.append(f"| {LOSS_NAMES[c['loss']]} | {c['M']} | {c['C']} | "
                         f"{positives_label(c)} | {c['tau']:g} | {c['scores']} | "
                         f"{o['python_ms']:.3f} | {o['cpp_ms']:.3f} | {o['ratio']:.2f}x |")
        lines.append("")
        sap = [o for o in overhead if o["case"]["loss"] == "smooth_ap"]
        if sap:
            worst = max(sap, key=lambda o: o["ratio"])
            verdict = "met" if worst["ratio"] <= 1.2 else "NOT met"
            lines.append(f"- SmoothAPLoss, M = 4096, C = 1: Python / C++ {worst['ratio']:.2f}x "
                         f"at worst; target <= 1.2x: {verdict}.")
    elif overhead_note:
        lines.append("")
        lines.append(f"Python overhead not measured: {overhead_note}")
    lines.append(f"- Whole run: {wall / 60:.1f} min.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--M", type=csv_of(int), default=[4096, 16384, 65536], help="pool sizes")
    p.add_argument("--classes", type=csv_of(int), default=[1, 4], help="C values")
    p.add_argument("--taus", type=csv_of(float), default=[0.01, 0.5], help="temperatures")
    p.add_argument("--scores", type=csv_of(str), default=list(SCORES),
                   help="score regimes: unseparated,separated")
    p.add_argument("--pos-rates", type=csv_of(float), default=[0.05],
                   help="positive rates of the C = 1 cases (e.g. 0.05,0.005)")
    p.add_argument("--losses", type=csv_of(str), default=list(LOSSES),
                   help="smooth_ap,recall")
    p.add_argument("--recall-taus", type=csv_of(float), default=[0.01],
                   help="temperatures of the RecallAtQuantileLoss cases (its cost does not "
                   "depend on tau)")
    p.add_argument("--recall-scores", type=csv_of(str), default=["unseparated"],
                   help="score regimes of the RecallAtQuantileLoss cases")
    p.add_argument("--quantile", type=float, default=0.005,
                   help="RecallAtQuantileLoss quantile (both implementations)")
    p.add_argument("--min-time", type=float, default=0.3,
                   help="seconds of timed steps per implementation and case (at least)")
    p.add_argument("--min-reps", type=int, default=3, help="interleaved rounds (at least)")
    p.add_argument("--max-reps", type=int, default=200, help="timed steps per case (at most)")
    p.add_argument("--slow-seconds", type=float, default=2.0,
                   help="seed steps longer than this: 3 steps, the warmup counted")
    p.add_argument("--memory-cap-gb", type=float, default=12.0,
                   help="skip seed cases whose estimated memory exceeds this")
    p.add_argument("--seed-bytes-per-pair", type=float, default=16.0,
                   help="memory estimate of the seed's SmoothAPLoss per (positive, row) pair")
    p.add_argument("--no-seed", action="store_true", help="time ours only")
    p.add_argument("--no-rss", action="store_true", help="skip the per-process peak RSS runs")
    p.add_argument("--rss-steps", type=int, default=2,
                   help="steps in each peak RSS process (seed cases over 1 GiB: 1)")
    p.add_argument("--no-overhead", action="store_true",
                   help="skip the Python vs C++ module comparison")
    p.add_argument("--overhead-time", type=float, default=2.0,
                   help="seconds per implementation of the Python vs C++ comparison")
    p.add_argument("--cpp-include", default=os.path.join(REPO_ROOT, "include"),
                   help="proxyloss headers for the C++ module binding")
    p.add_argument("--cpp-library", default=None,
                   help="libproxyloss.so to link the binding with (default: the one "
                   "`import proxyloss` loaded)")
    p.add_argument("--json", default=None, help="also write every number to this JSON file")
    p.add_argument("--markdown", default=None, help="also write the report to this file")
    p.add_argument("--single-case", default=None, help=argparse.SUPPRESS)
    p.add_argument("--implementation", choices=("ours", "seed"), default="ours",
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for loss in args.losses:
        if loss not in LOSSES:
            p.error(f"unknown loss {loss!r} (choose from {LOSSES})")
    for scores in args.scores + args.recall_scores:
        if scores not in SCORES:
            p.error(f"unknown score regime {scores!r} (choose from {SCORES})")
    return args


def cases_of(args):
    cases = []
    for loss in args.losses:
        taus = args.taus if loss == "smooth_ap" else args.recall_taus
        for tau in taus:
            for scores in (args.scores if loss == "smooth_ap" else args.recall_scores):
                for M in args.M:
                    for C in args.classes:
                        rates = args.pos_rates if C == 1 else [0.0]
                        for rate in rates:
                            cases.append({"loss": loss, "M": M, "C": C, "tau": tau,
                                          "scores": scores, "pos_rate": rate})
    return cases


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    if args.single_case:
        single_case(args)
        return

    def log(message):
        print(message, file=sys.stderr, flush=True)

    started = time.perf_counter()
    ours_pkg = import_implementation("ours")
    seed_pkg = import_implementation("seed")
    machine = machine_info(args, ours_pkg, seed_pkg)
    log(f"proxyloss from {machine['proxyloss_path']} ({machine['library']}); "
        f"seed proxy_losses {machine['seed']}; {machine['threads']} threads")

    cases = cases_of(args)
    results = []
    for i, case in enumerate(cases, 1):
        r = time_case(case, ours_pkg, seed_pkg, args)
        if not args.no_rss:
            r["rss_ours"] = measure_rss(case, "ours", args)
            if "seed_ms" in r:
                r["rss_seed"] = measure_rss(case, "seed", args)
        seed_part = (f"seed {r['seed_ms']:.2f} ms ({r['seed_reps']} steps), "
                     f"{r['speedup']:.1f}x, |loss diff| {r['loss_abs_diff']:.1e}"
                     if "seed_ms" in r else f"seed {r['seed_skipped']}")
        rss_part = (f"; RSS ours {fmt_rss(r.get('rss_ours'))}, seed {fmt_rss(r.get('rss_seed'))}"
                    if not args.no_rss else "")
        log(f"[{i}/{len(cases)}] {case_key(case)}: ours {r['ours_ms']:.3f} ms "
            f"({r['ours_reps']} steps), {seed_part}{rss_part}  "
            f"[{time.perf_counter() - started:.0f} s]")
        results.append(r)

    overhead, overhead_note = [], None
    if not args.no_overhead:
        cpp_module, info = build_cpp_module(args, log)
        if cpp_module is None:
            overhead_note = info
            log(f"Python overhead not measured: {info}")
        else:
            machine["cpp_binding"] = info
            for loss in [l for l in LOSSES if l in args.losses] or ["smooth_ap"]:
                for scores in args.scores:
                    case = {"loss": loss, "M": 4096, "C": 1, "tau": 0.01, "scores": scores,
                            "pos_rate": args.pos_rates[0]}
                    o = time_overhead(ours_pkg, cpp_module, case, args)
                    log(f"overhead {case_key(case)}: Python {o['python_ms']:.3f} ms, C++ "
                        f"{o['cpp_ms']:.3f} ms, {o['ratio']:.2f}x")
                    overhead.append(o)

    wall = time.perf_counter() - started
    report = markdown(machine, results, overhead, overhead_note, args, wall)
    print(report)
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write(report + "\n")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"machine": machine, "args": vars(args), "results": results,
                       "overhead": overhead, "wall_seconds": wall}, out, indent=1)


if __name__ == "__main__":
    main()
