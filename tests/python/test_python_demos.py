"""The Python demos (examples/python/*_demo.py) run end to end with tiny
settings, on proxyloss and on the seed packages (--implementation seed):
exit status 0, the table in stdout, and with --out the CSV (one row per
epoch) and the PNG plots.

Each demo runs as a subprocess of this interpreter with the inherited
environment (PYTHONPATH=python and PROXYLOSS_LIBRARY for the build tree, as
for the other Python tests) and writes only under pytest's tmp_path, so the
tests are safe under ``pytest -n``. Needs scikit-learn and matplotlib (the
demos' dependencies) and, for the seed runs, the seed packages (proxy-losses
0.1.3, pytorch-fairloss 0.1.1): a missing one fails the tests, it does not
skip them.
"""
import csv
import os
import pathlib
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


def run_demo(name, implementation, tmp_path, *extra):
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
    result = subprocess.run(
        [sys.executable, str(DEMOS / f"{name}.py"), *flags, "--implementation",
         implementation, "--out", str(out), *extra],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
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


def test_bad_flag_is_an_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(DEMOS / "toy_demo.py"), "--total-epochs", "0"],
        cwd=tmp_path, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--total-epochs" in result.stderr
