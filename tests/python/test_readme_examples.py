"""Every ```python block of the README runs as written (from the repository
root, in a fresh interpreter, so one example cannot lean on another)."""
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index):
    result = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"README python example {index} failed:\n{BLOCKS[index]}\n--- stderr ---\n"
        f"{result.stderr}")
