#!/usr/bin/env bash
# Installs what seatledger needs to build, run and test — Debian 12 packages
# only, nothing downloaded from anywhere else. Installs only what is missing,
# so a second run is quick. Run as root or with sudo available.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake pkg-config clang-14 libclang-rt-14-dev clang-format
  # libraries
  libcaf-dev librdkafka-dev libpqxx-dev libpq-dev libssl-dev
  nlohmann-json3-dev libsimdjson-dev libcli11-dev prometheus-cpp-dev
  libcpp-httplib-dev libjemalloc-dev libzstd-dev
  # tests
  libgtest-dev libgmock-dev librapidcheck-dev
  # servers and tools the service and its tests run
  postgresql postgresql-common prometheus kcat curl procps python3-yaml
)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
# The postgresql package would create and start a system cluster; seatledger
# runs its own (embedded) server or one given by --database-url instead.
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  --no-install-recommends "${missing[@]}"
