#!/usr/bin/env bash
# Builds proxyloss and runs its whole test suite (what CI runs).
#   bash scripts/test.sh
# BUILD_DIR (default build) and CMAKE_PREFIX_PATH (another LibTorch) are honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

build_dir=${BUILD_DIR:-build}
jobs=$(nproc)
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j"$jobs"
ctest --test-dir "$build_dir" --output-on-failure -j"$jobs"
