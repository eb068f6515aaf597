#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test.
#  1. unit and integration tests built with AddressSanitizer +
#     UndefinedBehaviorSanitizer (the integration tests run the sanitized
#     service binary, so its memory errors and leaks fail them too);
#  2. the release build's full suite (unit, integration, slow) against a
#     throwaway PostgreSQL 15 cluster from pg_virtualenv (fsync stays off:
#     these are correctness tests, not timings).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== unit tests (ASan + UBSan)"
scripts/build.sh asan
(cd build/asan && ctest -L unit --output-on-failure -j2 --timeout 600)

echo "== integration tests (ASan + UBSan, real PostgreSQL and Kafka protocol)"
LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp" pg_virtualenv -t -v 15 sh -c \
  'cd build/asan && ctest -L integration --output-on-failure --timeout 1200'

echo "== full suite (release build, real PostgreSQL and Kafka protocol)"
scripts/build.sh release
pg_virtualenv -t -v 15 sh -c 'cd build/release && ctest --output-on-failure --timeout 1200'
