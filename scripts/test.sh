#!/usr/bin/env bash
# Builds proxyloss and runs its whole test suite (what CI runs), then builds
# it again with AddressSanitizer and UndefinedBehaviorSanitizer and runs the
# C++ tests there.
#   bash scripts/test.sh
# BUILD_DIR (default build), ASAN_BUILD_DIR (default build-asan) and
# CMAKE_PREFIX_PATH (another LibTorch) are honoured. PROXYLOSS_SANITIZERS=0
# skips the sanitized configuration, for quick local runs; CI runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

build_dir=${BUILD_DIR:-build}
jobs=$(nproc)
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j"$jobs"
ctest --test-dir "$build_dir" --output-on-failure -j"$jobs"

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
