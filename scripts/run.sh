#!/usr/bin/env bash
# The run command: installs what is missing, builds, and runs seatledger on
# its embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
exec build/release/app/seatledger demo "$@"
