#!/usr/bin/env bash
# The run command: installs what is missing, builds, and runs seatledger on
# its embedded defaults (an in-process Kafka-protocol cluster, a private
# PostgreSQL under ./var, a signing key under ./var/keys). It feeds the
# service a realistic sample, shows the resulting subscription state and
# monthly usage, and keeps running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release

bin=build/release/app/seatledger
mkdir -p var
# As root the embedded PostgreSQL runs as an unprivileged OS user, which
# must reach its data directory through every parent: a checkout under
# /root (mode 0700) is out of its reach, so its data go elsewhere.
if [ "$(id -u)" = 0 ] && [ -z "${SEATLEDGER_DATA_DIR:-}" ] \
  && [ -z "${SEATLEDGER_DATABASE_URL:-}" ]; then
  server_user=postgres
  id "$server_user" >/dev/null 2>&1 || server_user=nobody
  if ! runuser -u "$server_user" -- test -x "$PWD/var"; then
    export SEATLEDGER_DATA_DIR=/var/lib/seatledger
    echo "note: OS user $server_user (the embedded PostgreSQL's) cannot reach" \
      "$PWD/var; its data and the signing key go to $SEATLEDGER_DATA_DIR" \
      "(give license verify and ledger verify --data-dir $SEATLEDGER_DATA_DIR)" >&2
  fi
fi
listen="${SEATLEDGER_HTTP_LISTEN:-127.0.0.1:8080}"
token_file=var/api-token
if [ ! -s "$token_file" ]; then
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token_file"
fi
token="$(cat "$token_file")"

"$bin" serve --http-listen "$listen" --api-token "$token:admin" \
  > var/serve.out 2> var/serve.log &
pid=$!
cleanup() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" || true
  fi
}
trap cleanup EXIT
trap 'exit 0' INT TERM

for _ in $(seq 1 120); do
  grep -q '^HTTP=' var/serve.out 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat var/serve.log >&2; exit 1; }
  sleep 0.5
done
cat var/serve.out
bootstrap="$(sed -n 's/^KAFKA_BOOTSTRAP=//p' var/serve.out)"
http="$(sed -n 's/^HTTP=//p' var/serve.out)"
for _ in $(seq 1 120); do
  curl -sf "$http/readyz" >/dev/null && break
  sleep 0.5
done

echo "== feeding the sample"
"$bin" sample --out var/sample | while read -r topic file; do
  "$bin" publish --kafka-bootstrap "$bootstrap" --topic "$topic" "$file"
  sleep 2
done
sleep 3

get() {
  curl -s -H "Authorization: Bearer $token" "$http$1"
  echo
}
echo
echo "== GET /v1/subscriptions/acme-enterprise"
get /v1/subscriptions/acme-enterprise
echo
echo "== monthly usage (CSV): GET /v1/subscriptions/acme-enterprise/usage?format=csv"
get "/v1/subscriptions/acme-enterprise/usage?format=csv"
echo "== GET /v1/subscriptions/globex (renewed)"
get /v1/subscriptions/globex
echo
echo "== GET /v1/subscriptions/initech-trial/licenses (archived: revoked)"
get /v1/subscriptions/initech-trial/licenses
echo
echo "seatledger is running: $http (bearer token in $token_file; logs in"
echo "var/serve.log). Ctrl-C stops it."
wait "$pid"
