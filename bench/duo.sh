#!/usr/bin/env bash
# Duo pushes that wait do not hold Padlock's workers: a real `padlock serve` (release build) with a
# company on Duo (the Duo stand-in, tests/peers/duo_standin.py, as Duo), PUSHES users linked to
# the stand-in's `silent` Duo user (whose pushes are never answered), then:
#   1. client-credentials token load with wrk, nothing else running (the baseline);
#   2. PUSHES PAM logins at once (one Python thread each): preauth → auth "" (the push) → GET
#      /pam/v1/auth_status over and over (Padlock holds each call up to 5 s asking Duo, which holds
#      it too) — every one of them waiting on Duo for the whole run;
#   3. the same token load while they wait, and Padlock's thread count and resident memory before
#      and during the wait.
# Every number is printed, none is checked. Padlock's time beyond Duo's own answer is measured by
# `cargo bench -p padlock-idp --bench login` (pam_preauth_auth_duo_passcode vs duo_calls_alone).
# Usage: bench/duo.sh [pushes, default 200] [seconds per wrk run, default 10]
#   CARGO="flock /tmp/padlock-cargo.lock cargo" bench/duo.sh   (serialises builds with others)
set -euo pipefail
cd "$(dirname "$0")/.."
pushes=${1:-200}
secs=${2:-10}
cargo=${CARGO:-cargo}
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
command -v jq >/dev/null || { echo "installing jq"; apt-get install -y -qq jq >/dev/null; }
python3 -c "import duo_client" 2>/dev/null || python3 -m pip install -q duo_client

$cargo build --release -q -p padlock-idp --bin padlock
target=$($cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
bin=$target/release/padlock
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

# --- Duo (the stand-in) and Padlock --------------------------------------------------------------
ikey=DIBENCH0000000000001
skey=BenchSecretKeyBenchSecretKeyBenchSecret1
api_host=api-bench001.duosecurity.com
python3 -u tests/peers/duo_standin.py --port 0 --ikey "$ikey" --skey "$skey" --api-host "$api_host" \
  --push-timeout-secs 60 > "$work/duo.log" 2> "$work/duo.err" &
duo_pid=$!
until grep -q '^ready ' "$work/duo.log" 2>/dev/null; do sleep 0.1; done
duo_port=$(awk '/^ready / {print $2; exit}' "$work/duo.log")

printf '[testing]\nduo_base_url = "http://127.0.0.1:%s"\n' "$duo_port" > "$work/padlock.toml"
(cd "$work" && PADLOCK_LOG=warn exec "$bin" serve -c padlock.toml --data-dir data --listen 127.0.0.1:0 > out 2> err) &
pid=$!
until grep -q "Padlock listening" "$work/out" 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^Padlock listening on \([^ ]*\).*/\1/p' "$work/out")
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$pid/status"; }
threads() { awk '/^Threads/ {print $2}' "/proc/$pid/status"; }
op() { (cd "$work" && "$bin" "$@" --credentials data/operator.json --json); }

setup_started=$(date +%s.%N)
op tenant create Bench >/dev/null
umask 077
printf '%s' "$skey" > "$work/duo.skey"
op tenant 2fa Bench --enable --methods sms-email,duo --duo-ikey "$ikey" --duo-skey-file "$work/duo.skey" \
  --duo-host "$api_host" >/dev/null
acct=$(op api-account add --tenant Bench --name load --scope api.read)
host=$(op pam-host add --tenant Bench --name bench)
echo "correct-horse-battery-staple" > "$work/pw"
opid=$(jq -r .client_id "$work/data/operator.json")
opsecret=$(jq -r .client_secret "$work/data/operator.json")
optoken=$(curl -sf -u "$opid:$opsecret" -d grant_type=client_credentials "$url/token" | jq -r .access_token)
names() { for ((i = 1; i <= pushes; i++)); do printf 'd%03d\n' "$i"; done; }
export bin work url optoken
add_user() {
  (cd "$work" && "$bin" user add --tenant Bench --email "$1@bench.example" --password-file pw \
    --unix-name "$1" --credentials data/operator.json --json >/dev/null)
  curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $optoken" -H 'Content-Type: application/json' \
    "$url/api/v1/tenants/Bench/users/$1@bench.example/duo" -d '{"username":"silent"}'
}
export -f add_user
names | xargs -P 2 -I{} bash -c 'add_user {}'
echo "setup: $pushes users created and linked to Duo in $(awk -v s="$setup_started" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e-s}') s"

# --- Token load, alone ---------------------------------------------------------------------------
export BASIC="Basic $(printf '%s:%s' "$(jq -r .client_id <<< "$acct")" "$(jq -r .client_secret <<< "$acct")" | base64 -w0)"
cat > "$work/token.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("BASIC")
LUA
run() { # $1 label
  local out rps p50 p99 errs
  out=$(wrk -t1 -c"${WRK_CONNS:-16}" -d"${secs}s" --latency -s "$work/token.lua" "$url/token")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errs=$(echo "$out" | awk '/Non-2xx/ {print $4}')
  echo "$1: ${rps} req/s, p50 ${p50}, p99 ${p99}${errs:+, non-2xx $errs}"
}
echo "before the pushes: $(threads) threads, RSS $(rss)"
run "client_credentials, no push waiting"

# --- Pushes that wait ----------------------------------------------------------------------------
# One light process holds the waiting logins (a thread each, blocked in its HTTP call), so the
# load generator takes little of the two cores the token load and Padlock share.
cat > "$work/wait.py" <<'PY'
import base64, json, os, sys, threading, urllib.request
url, host_id, host_secret, names, work = sys.argv[1:6]
auth = "Basic " + base64.b64encode(f"{host_id}:{host_secret}".encode()).decode()
lock = threading.Lock()
def log(name, line):
    with lock, open(os.path.join(work, name), "a") as f:
        f.write(line + "\n")
def call(path, body=None, query=""):
    req = urllib.request.Request(url + path + query, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": auth, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())
def login(user):
    pre = call("/pam/v1/preauth", {"user": user, "service": "sudo", "tty": "pts/0"})
    if "txid" not in pre:
        log("pushed", "none"); log("settled", f"preauth: {json.dumps(pre)}"); return
    answer = call("/pam/v1/auth", {"txid": pre["txid"], "answer": ""})
    log("pushed", answer["result"])
    if answer["result"] != "pending":
        log("settled", f"auth: {json.dumps(answer)}"); return
    while not os.path.exists(os.path.join(work, "stop")):
        status = call("/pam/v1/auth_status", query="?txid=" + pre["txid"])
        if status["result"] != "pending":
            log("settled", f"auth_status: {json.dumps(status)}"); return
threads = [threading.Thread(target=login, args=(n,), daemon=True) for n in open(names).read().split()]
for t in threads: t.start()
for t in threads: t.join()
PY
names > "$work/names"
touch "$work/pushed" "$work/settled"
python3 "$work/wait.py" "$url" "$(jq -r .host_id <<< "$host")" "$(jq -r .host_secret <<< "$host")" "$work/names" "$work" &
waiter_pid=$!
deadline=$((SECONDS + 60))
until [ "$(wc -l < "$work/pushed" 2>/dev/null || echo 0)" -ge "$pushes" ] || ((SECONDS > deadline)); do sleep 0.2; done
echo "pushes sent and waiting: $(grep -c '^pending$' "$work/pushed") of $pushes (Duo saw $(grep -c '"factor": "push"' "$work/duo.log") push requests)"
# CPU time (user + system) each process spends over 5 s while the pushes only wait.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
before=("$(ticks "$pid")" "$(ticks "$duo_pid")" "$(ticks "$waiter_pid")")
sleep 5
share() { awk -v a="$1" -v b="$2" -v hz="$hz" 'BEGIN {printf "%.1f%%", (b - a) / hz / 5 * 100}'; }
echo "CPU while $pushes pushes wait (of one core, over 5 s): Padlock $(share "${before[0]}" "$(ticks "$pid")"), the Duo stand-in $(share "${before[1]}" "$(ticks "$duo_pid")"), the waiting clients $(share "${before[2]}" "$(ticks "$waiter_pid")")"
echo "while they wait: $(threads) threads, RSS $(rss), Duo auth_status calls so far $(grep -c '/auth/v2/auth_status' "$work/duo.log")"
run "client_credentials, $pushes pushes waiting"
echo "after the load, still waiting: $(threads) threads, RSS $(rss); ended early: $(wc -l < "$work/settled" 2>/dev/null || echo 0)"
[ ! -s "$work/settled" ] || sort "$work/settled" | uniq -c | sort -rn | head -5
touch "$work/stop"
