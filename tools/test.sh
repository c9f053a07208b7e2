#!/usr/bin/env bash
# Installs what is missing, builds certfleet and runs the whole test suite through ctest.
#   ./tools/test.sh              everything
#   ./tools/test.sh -R crypto    extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."

./tools/install-deps.sh

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$JOBS"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS" --timeout 600 "$@"
