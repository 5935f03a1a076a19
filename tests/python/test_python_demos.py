"""The Python demos (examples/python/*_demo.py) run end to end with tiny
settings, on proxyloss and on the seed packages (--implementation seed):
exit status 0, the table in stdout, and with --out the CSV (one row per
epoch) and the PNG plots.

Each demo runs as a subprocess of this interpreter with the inherited
environment (PYTHONPATH=python and PROXYLOSS_LIBRARY for the build tree, as
for the other Python tests) and writes only under pytest's tmp_path, so the
tests are safe under ``pytest -n``. ddp_train.py also runs on 2 processes
under ``python -m torch.distributed.run`` (a rendezvous on a free port, the
launcher's logs under tmp_path) and is checked against compare_demo.py.
Needs scikit-learn and matplotlib (the demos' dependencies) and, for the
seed runs, the seed packages (proxy-losses 0.1.3, pytorch-fairloss 0.1.1):
a missing one fails the tests, it does not skip them.
"""
import csv
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest

import matplotlib  # noqa: F401  (the demos' dependencies: fail here, not in a demo)
import sklearn  # noqa: F401

DEMOS = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"
SEED_PACKAGE = {"toy_demo": "proxy_losses", "compare_demo": "proxy_losses",
                "fairloss_demo": "fairloss"}
EPOCHS = 3

RANKING_FLAGS = ["--n-samples", "1600", "--pos-rate", "0.05", "--total-epochs", str(EPOCHS),
                 "--warmup-epochs", "1", "--blend-epochs", "1", "--batch-size", "256",
                 "--queue-size", "256", "--threads", "1", "--seed", "7"]
FAIRLOSS_FLAGS = ["--n-samples", "1200", "--classes", "4", "--total-epochs", str(EPOCHS),
                  "--batch-size", "128", "--threads", "1", "--seed", "7"]


def run_demo(name, implementation, tmp_path, *extra, launcher=()):
    """Runs examples/python/`name`.py as `sys.executable *launcher script
    flags`; returns its stdout and its --out directory."""
    if implementation == "seed":
        __import__(SEED_PACKAGE[name])
    flags = FAIRLOSS_FLAGS if name == "fairloss_demo" else RANKING_FLAGS
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    # The demo runs in tmp_path: relative paths in the environment are made
    # absolute (PYTHONPATH=python from the repository root, say).
    if "PYTHONPATH" in env:
        env["PYTHONPATH"] = os.pathsep.join(
            os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    if "PROXYLOSS_LIBRARY" in env:
        env["PROXYLOSS_LIBRARY"] = os.path.abspath(env["PROXYLOSS_LIBRARY"])
    # A session of its own, so that a timeout kills the launcher's workers too.
    process = subprocess.Popen(
        [sys.executable, *launcher, str(DEMOS / f"{name}.py"), *flags, "--implementation",
         implementation, "--out", str(out), *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{name} timed out\nstdout:\n{stdout}\nstderr:\n{stderr}")
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert result.returncode == 0, (
        f"{name} --implementation {implementation} exited {result.returncode}\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result.stdout, out


def read_csv(path):
    assert path.is_file(), f"{path} is missing"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows


def table_rows(stdout, header_start, columns):
    """The lines after the table header that start with an epoch number and
    have `columns` fields."""
    lines = stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line.split()[:len(header_start)] ==
              header_start]
    assert starts, f"no table header {header_start} in:\n{stdout}"
    rows = []
    for line in lines[starts[-1] + 1:]:
        fields = line.replace("|", " ").split()
        if fields and fields[0].isdigit():
            rows.append(fields)
            assert len(fields) == columns, f"bad table row {line!r}"
        elif rows:
            break
    return rows


def assert_png(path):
    assert path.is_file(), f"{path} is missing"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"


@pytest.mark.parametrize("implementation", ["proxyloss", "seed"])
def test_toy_demo(implementation, tmp_path):
    stdout, out = run_demo("toy_demo", implementation, tmp_path)
    rows = table_rows(stdout, ["epoch", "phase", "weight", "temp", "loss", "AUCPR"], 7)
    assert [int(r[0]) for r in rows] == list(range(EPOCHS))
    assert [r[1] for r in rows] == ["warmup", "blend", "AP"]
    assert [float(r[2]) for r in rows] == pytest.approx([0.0, 0.5, 1.0])
    for r in rows:
        assert 0.0 <= float(r[5]) <= 1.0
    assert "done in" in stdout
    csv_rows = read_csv(out / "toy_demo.csv")
    assert len(csv_rows) == EPOCHS
    assert [int(r["epoch"]) for r in csv_rows] == list(range(EPOCHS))
    assert {"phase", "main_weight", "temperature", "loss", "aucpr"} <= set(csv_rows[0])
    # The temperature decays once the main loss is in.
    temps = [float(r["temperature"]) for r in csv_rows]
    assert temps[-1] < temps[0]
    assert_png(out / "toy_demo.png")


@pytest.mark.parametrize("implementation", ["proxyloss", "seed"])
def test_toy_demo_recall(implementation, tmp_path):
    stdout, out = run_demo("toy_demo", implementation, tmp_path, "--loss", "recall",
                           "--blend-epochs", "0")
    rows = table_rows(stdout, ["epoch", "phase", "weight", "temp", "loss", "AUCPR"], 7)
    assert [r[1] for r in rows] == ["warmup", "RECALL", "RECALL"]
    assert len(read_csv(out / "toy_demo.csv")) == EPOCHS


@pytest.mark.parametrize("implementation", ["proxyloss", "seed"])
def test_compare_demo(implementation, tmp_path):
    stdout, out = run_demo("compare_demo", implementation, tmp_path)
    rows = table_rows(stdout, ["epoch", "phase", "warmup-only", "AP-only", "warmup+blend"], 5)
    assert [int(r[0]) for r in rows] == list(range(EPOCHS))
    assert [r[1] for r in rows] == ["warmup", "blend", "AP"]
    assert "Best AUCPR" in stdout and "wall time" in stdout
    csv_rows = read_csv(out / "aucpr_by_epoch.csv")
    assert len(csv_rows) == EPOCHS
    assert list(csv_rows[0]) == ["epoch", "phase", "warmup-only", "AP-only", "warmup+blend"]
    # Same data, weights and batch order: after the shared BCE epoch, the
    # warmup-only and warmup+blend runs are identical.
    assert float(csv_rows[0]["warmup-only"]) == float(csv_rows[0]["warmup+blend"])
    runs = read_csv(out / "runs.csv")
    assert [r["strategy"] for r in runs] == ["warmup-only", "AP-only", "warmup+blend"]
    assert all(r["implementation"] == implementation for r in runs)
    for strategy in ("warmup_only", "AP_only", "warmup_blend"):
        assert read_csv(out / f"pr_curve_{strategy}.csv")
    assert_png(out / "aucpr_by_epoch.png")
    assert_png(out / "pr_curves.png")


@pytest.mark.parametrize("implementation", ["proxyloss", "seed"])
def test_fairloss_demo(implementation, tmp_path):
    stdout, out = run_demo("fairloss_demo", implementation, tmp_path)
    rows = table_rows(stdout, ["epoch", "|", "acc", "F1", "PBS", "PLL"], 1 + 3 * 4)
    assert [int(r[0]) for r in rows] == list(range(EPOCHS))
    assert "Final" in stdout and "FairLoss soft:" in stdout
    csv_rows = read_csv(out / "fairloss_demo.csv")
    assert len(csv_rows) == EPOCHS
    for prefix in ("ce", "fair", "fair_soft"):
        for metric in ("accuracy", "macro_f1", "pbs", "pll"):
            assert f"{prefix}_{metric}" in csv_rows[0]
        assert 0.0 <= float(csv_rows[-1][f"{prefix}_accuracy"]) <= 1.0
    assert_png(out / "fairloss_demo_accuracy.png")
    assert_png(out / "fairloss_demo_scoring.png")


def test_seed_and_proxyloss_rank_alike(tmp_path):
    """Same data, weights and batch order: the two implementations' AUCPR
    per epoch agree closely (their losses agree to float rounding)."""
    import proxy_losses  # noqa: F401
    _, ours = run_demo("toy_demo", "proxyloss", tmp_path / "proxyloss")
    _, seed = run_demo("toy_demo", "seed", tmp_path / "seed")
    got = [float(r["aucpr"]) for r in read_csv(ours / "toy_demo.csv")]
    want = [float(r["aucpr"]) for r in read_csv(seed / "toy_demo.csv")]
    assert got == pytest.approx(want, abs=0.02)


COMPARE_HEADER = ["epoch", "phase", "warmup-only", "AP-only", "warmup+blend"]
# torch.distributed.run options that torch 1.13 and 2.x both take (the
# underscore spellings): a rendezvous on a free port (1.13's --standalone
# uses the fixed port 29400), the launcher polling its workers every 0.1 s
# (1.13's default is 5 s), and --redirects / --tee given as a mapping, for
# rank 1 only: 1.13's default "0" parses to None on Python 3.11 and crashes
# the launcher; this leaves rank 0's stdout as it is.
TORCHRUN = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--rdzv_backend", "c10d",
            "--rdzv_endpoint", "localhost:0", "--monitor_interval", "0.1",
            "--redirects", "1:1", "--tee", "1:1"]


def progress_losses(stdout):
    """{(strategy, epoch): training loss} from the demo's progress lines."""
    found = re.findall(r"^\s+(\S+)\s+epoch\s+(\d+)/\d+\s+loss (\S+)\s+AUCPR", stdout,
                       flags=re.MULTILINE)
    return {(name, int(epoch)): float(loss) for name, epoch, loss in found}


def test_ddp_train_matches_compare_demo(tmp_path):
    """examples/python/ddp_train.py on 2 processes (torch.distributed.run,
    Gloo) prints compare_demo.py's table on the same flags: same epochs and
    phases, every AUCPR and every epoch's training loss equal to 1e-3. With
    --batch-size 255 the ranks' pieces differ in size ([128, 127]).

    Why 1e-3: the global batches, the pools the losses rank and the queues
    are the single-process ones row for row, and the gradients equal them to
    float rounding. Measured on torch 1.13 with these flags: every AUCPR
    equal to the last bit, the printed losses equal, the validation logits
    within 4e-7 of each other (the AP-only run's also shifted by a common
    4e-4, which no ranking sees: ddp_train.py's docstring). An AUCPR moves
    only if two of the 400 validation logits lie within that rounding of
    each other and swap, and then by less than 1e-3 unless the pair is among
    the top few; 1e-3 leaves that room (and some for another torch's or
    BLAS's rounding) and still catches a ranking loss that does not gather
    (measured: the AP-only AUCPR off by 0.012 at epoch 2, its loss by
    0.013) or batches not shared as the single-process ones."""
    single, _ = run_demo("compare_demo", "proxyloss", tmp_path / "single",
                         "--batch-size", "255")
    # The launcher's log folder (rank 1's stdout.log) under tmp_path too.
    ddp, out = run_demo("ddp_train", "proxyloss", tmp_path / "ddp", "--batch-size", "255",
                        launcher=TORCHRUN + ["--log_dir", str(tmp_path / "torchrun-logs")])
    assert "processes: 2 (torch.distributed, gloo); each batch of 255 rows shared as " \
           "[128, 127]" in ddp
    want = table_rows(single, COMPARE_HEADER, 5)
    got = table_rows(ddp, COMPARE_HEADER, 5)
    assert [r[:2] for r in got] == [r[:2] for r in want] == [
        [str(e), phase] for e, phase in enumerate(["warmup", "blend", "AP"])]
    assert [[float(v) for v in r[2:]] for r in got] == [
        pytest.approx([float(v) for v in r[2:]], abs=1e-3) for r in want]
    want_losses, got_losses = progress_losses(single), progress_losses(ddp)
    assert len(want_losses) == 3 * EPOCHS and got_losses.keys() == want_losses.keys()
    for key, loss in want_losses.items():
        assert got_losses[key] == pytest.approx(loss, abs=1e-3), key
    # Rank 0 alone writes the outputs, one row per epoch.
    assert len(read_csv(out / "aucpr_by_epoch.csv")) == EPOCHS
    assert "[default1]" not in ddp  # rank 1 prints nothing
    assert ddp.count("Best AUCPR") == 1


def test_ddp_train_single_process_is_compare_demo(tmp_path):
    """Without torchrun (no process group) ddp_train.py is compare_demo.py's
    run: the same table, AUCPR for AUCPR at full precision."""
    single, want = run_demo("compare_demo", "proxyloss", tmp_path / "single")
    ddp, got = run_demo("ddp_train", "proxyloss", tmp_path / "ddp")
    assert "processes: 1 (no process group)" in ddp
    assert table_rows(ddp, COMPARE_HEADER, 5) == table_rows(single, COMPARE_HEADER, 5)
    assert read_csv(got / "aucpr_by_epoch.csv") == read_csv(want / "aucpr_by_epoch.csv")


def test_bad_flag_is_an_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(DEMOS / "toy_demo.py"), "--total-epochs", "0"],
        cwd=tmp_path, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--total-epochs" in result.stderr
