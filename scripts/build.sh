#!/usr/bin/env bash
# Configures and builds one flavour of the project.
#   scripts/build.sh release   -> build/release (everything)
#   scripts/build.sh asan      -> build/asan (the service, unit and integration
#                                 tests under ASan + UBSan)
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
jobs="$(nproc)"
case "$flavour" in
  release)
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build/release -j"$jobs"
    ;;
  asan)
    cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DSEATLEDGER_SANITIZE=ON \
      -DSEATLEDGER_BENCH=OFF >/dev/null
    cmake --build build/asan -j"$jobs" --target seatledger_unit_tests \
      seatledger seatledger_integration_tests
    ;;
  *)
    echo "usage: scripts/build.sh [release|asan]" >&2
    exit 2
    ;;
esac
