"""Every ```python block of the README runs as written (from the repository
root, in a fresh interpreter, so one example cannot lean on another). The
one example that loads the library by its path in the default build folder
(build/libproxyloss.so) gets PROXYLOSS_LIBRARY's path instead when that is
set (a build in another folder, e.g. against another torch)."""
import os
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
    code = BLOCKS[index]
    if os.environ.get("PROXYLOSS_LIBRARY"):
        code = code.replace('"build/libproxyloss.so"',
                            repr(os.path.abspath(os.environ["PROXYLOSS_LIBRARY"])))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (
        f"README python example {index} failed:\n{code}\n--- stderr ---\n"
        f"{result.stderr}")
