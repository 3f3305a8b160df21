#!/usr/bin/env bash
# Load benchmark of a real `padlock serve` (release build) on loopback with wrk (keep-alive):
#   - client-credentials token issuance, ES256 and RS256 access tokens (an API account, audited);
#   - discovery and JWKS;
#   - resident memory idle and after the load.
# Usage: bench/load.sh [seconds per run, default 10]. Prints one line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p padlock-idp -q
bin=$PWD/target/release/padlock
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }

start() { # $1 = access token alg
  printf '[tokens]\naccess_token_alg = "%s"\n' "$1" > "$work/padlock.toml"
  PADLOCK_LOG=warn "$bin" serve -c "$work/padlock.toml" --data-dir "$work/data" --listen 127.0.0.1:18080 > "$work/out" 2>"$work/err" &
  pid=$!
  until grep -q "Padlock listening" "$work/out" 2>/dev/null; do sleep 0.1; done
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }

cat > "$work/token.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("BASIC")
LUA

start ES256
echo "idle RSS after start: $(rss $pid)"
(cd "$work" && "$bin" tenant create Bench --credentials data/operator.json --json >/dev/null)
acct=$(cd "$work" && "$bin" api-account add --tenant Bench --name load --scope api.read --credentials data/operator.json --json)
id=$(echo "$acct" | sed -E 's/.*"client_id":"([^"]+)".*/\1/')
secret=$(echo "$acct" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
export BASIC="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
curl -sf -X POST -H "Authorization: $BASIC" -d grant_type=client_credentials http://127.0.0.1:18080/token | grep -q access_token

run() { # $1 label, rest: wrk args
  local label=$1; shift
  local out; out=$(wrk -t"${WRK_THREADS:-1}" -c"${WRK_CONNS:-32}" -d"${secs}s" --latency "$@")
  local rps p50 p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local errs; errs=$(echo "$out" | awk '/Non-2xx/ {print $4}')
  echo "$label: ${rps} req/s, p50 ${p50}, p99 ${p99}${errs:+, non-2xx $errs}"
}

run "client_credentials ES256" -s "$work/token.lua" http://127.0.0.1:18080/token
echo "RSS after ES256 load: $(rss $pid)"
run "discovery" http://127.0.0.1:18080/.well-known/openid-configuration
run "jwks" http://127.0.0.1:18080/jwks
echo "RSS after all loads: $(rss $pid)"
stop

start RS256
run "client_credentials RS256" -s "$work/token.lua" http://127.0.0.1:18080/token
echo "RSS after RS256 load: $(rss $pid)"
stop
