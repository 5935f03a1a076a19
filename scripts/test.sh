#!/usr/bin/env bash
# Builds proxyloss and runs its whole test suite (what CI runs): the C++ and
# Python tests on the build tree, then `pip install .` and the Python tests
# on the installed package; then builds it again with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the C++ tests there.
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

# The Python package as a user installs it (pip builds the library through
# CMake), then the seed comparison against the installed package, from
# another folder.
"$python_env/bin/pip" install -q .
repo=$(pwd)
(cd "$python_env" && env -u PROXYLOSS_LIBRARY -u PYTHONPATH bin/python -m pytest -q \
  -p no:cacheprovider "$repo/tests/python/test_ranking_losses_vs_seed.py")

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
