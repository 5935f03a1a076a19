#!/usr/bin/env bash
# Builds proxyloss and runs its whole test suite (what CI runs): the C++ and
# Python tests on the build tree; then the wheel (`pip wheel .`), installed,
# and the Python tests on the installed package; then the library again with
# AddressSanitizer and UndefinedBehaviorSanitizer and the C++ tests there.
#   bash scripts/test.sh
# BUILD_DIR (default build), ASAN_BUILD_DIR (default build-asan) and
# CMAKE_PREFIX_PATH (another LibTorch) are honoured. PROXYLOSS_SANITIZERS=0
# skips the sanitized configuration, for quick local runs; CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

build_dir=${BUILD_DIR:-build}
jobs=$(nproc)
# The Python tests' environment: a venv over the system's torch (Debian's
# python3-torch, the same LibTorch as libtorch-dev) with the seed packages
# from PyPI as oracles (--no-deps: they must not pull another torch).
python_env="$build_dir/python-env"
python=${PROXYLOSS_PYTHON:-/usr/bin/python3}
if [ ! -x "$python_env/bin/python" ]; then
  "$python" -m venv --system-site-packages "$python_env"
fi
"$python_env/bin/pip" install -q --no-deps \
  proxy-losses==0.1.3 pytorch-fairloss==0.1.1 imbalanced-losses==0.6.0
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release \
  -DPROXYLOSS_TEST_PYTHON="$(cd "$python_env/bin" && pwd)/python"
cmake --build "$build_dir" -j"$jobs"
ctest --test-dir "$build_dir" --output-on-failure -j"$jobs"

# The Python package as a user installs it: pip builds a wheel through the
# project's CMake (what `pip install .` does, kept as a file), installs it
# (its bare `torch` requirement met by the system's torch), and the Python
# tests run against the installed package from another folder (all but
# test_ops_from_python, which needs the build tree's module_steps).
wheel_dir="$build_dir/wheel"
rm -rf "$wheel_dir"
"$python_env/bin/pip" wheel -q --no-deps -w "$wheel_dir" .
# Not --force-reinstall: that would reinstall the dependencies too, and pull
# pip's torch over the system's. A plain install of the wheel checks that the
# bare `torch` requirement is met by the torch already there.
"$python_env/bin/pip" uninstall -q -y proxyloss 2>/dev/null || true
"$python_env/bin/pip" install -q "$wheel_dir"/proxyloss-*.whl
"$python_env/bin/python" -c "import sys, torch
assert not torch.__file__.startswith(sys.prefix), 'pip put its own torch into the venv: ' + torch.__file__
print('torch', torch.__version__, 'from', torch.__file__)"
repo=$(pwd)
(cd "$python_env" && env -u PROXYLOSS_LIBRARY -u PYTHONPATH bin/python -c \
  "import proxyloss; print('proxyloss', proxyloss.__version__, 'installed at', proxyloss.__file__)")
(cd "$python_env" && env -u PROXYLOSS_LIBRARY -u PYTHONPATH bin/python -m pytest -q \
  -p no:cacheprovider "$repo/tests/python" \
  --ignore="$repo/tests/python/test_ops_from_python.py")

if [ "${PROXYLOSS_SANITIZERS:-1}" = 0 ]; then
  echo "proxyloss: PROXYLOSS_SANITIZERS=0: the sanitized tests are skipped"
  exit 0
fi
# The sanitized configuration (cmake/ProxylossSanitizers.cmake): library,
# tests and examples instrumented, no benchmarks; CTest sets the sanitizers'
# runtime options (tests/sanitizers/).
asan_dir=${ASAN_BUILD_DIR:-build-asan}
cmake -S . -B "$asan_dir" -DCMAKE_BUILD_TYPE=Release -DPROXYLOSS_SANITIZE=ON \
  -DPROXYLOSS_BUILD_BENCHMARKS=OFF
cmake --build "$asan_dir" -j"$jobs"
ctest --test-dir "$asan_dir" --output-on-failure -j"$jobs"
