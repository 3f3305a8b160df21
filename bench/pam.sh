#!/usr/bin/env bash
# PAM "speed and size": pam_padlock.so against a real `padlock serve` (release builds) on loopback.
#   1. size of libpam_padlock.so, stripped (a stripped copy; the build is left as it is);
#   2. a company with 2FA on (sms-email,totp), USERS users with Unix names, a PAM host; each user
#      enrols an authenticator app over HTTP as a person does (authorize → password → emailed code
#      from the development outbox → padlock page → TOTP start → confirm);
#   3. latency: one login per user through the module's own code (pam_module/examples/
#      login_latency.rs: config + host secret + Client, then flow::login = preauth + auth with the
#      current TOTP code), median/p90/p99/max, after waiting for the TOTP step after the
#      enrolments'. Threads: pamtester under pam_wrapper cannot show the threads of the process
#      that loaded the module, so the example, running the same Client and flow as the .so, prints
#      its /proc/self/task count before the first login and after the last (the unit test
#      client::tests::no_thread_outlives_a_login does the same around TLS, Duo polling, timeouts);
#   4. wrk (keep-alive, WRK_CONNS connections, SECS seconds each):
#      - /pam/v1/preauth cycling over the users (service sudo, no rhost, so no per-source limit
#        applies; a TOTP user's preauth sends nothing; every answer is a challenge);
#      - /pam/v1/auth cycling over one open transaction per user (from a preauth), each answering
#        a wrong code: every answer is a real check (lockout count, RFC 6238 verify, audit) and
#        answers `retry`. Every wrong code counts toward the user's lock and a right one is
#        accepted once per user per 30-second step, so no workload keeps real checks going for
#        ever: [lockout] max_failures is raised to 100 (the most Padlock allows) in this run's
#        padlock.toml, and the load sends at most 98 wrong codes per user, then stops — after
#        SECS seconds or USERS × 98 answers, whichever comes first (about 1.2 s for 200 users,
#        2.7 s for 500, on two cores). No user locks; the answers are counted by kind so the reader
#        can check.
#        Requests/s is answers over the wall-clock time from the first request to the last answer
#        (wrk's own figure would divide by the whole -d).
#   5. Padlock's resident memory after the loads; then it is stopped and the temp dir removed.
#   Every number is printed, none is checked. One line per measurement.
# Usage: bench/pam.sh [users, default 200, at most 500] [seconds per wrk run, default 5]
#   CARGO="flock /tmp/padlock-cargo.lock cargo" bench/pam.sh   (serialises builds with others)
#   Run as root: the module refuses a configuration or host secret not owned by root.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-200}
secs=${2:-5}
cargo=${CARGO:-cargo}
# /authorize admits 600 flows per source per 10 minutes: the enrolments come from one address.
((users >= 1 && users <= 500)) || { echo "users: 1 to 500" >&2; exit 2; }
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
command -v oathtool >/dev/null || { echo "installing oathtool"; apt-get install -y -qq oathtool >/dev/null; }
command -v jq >/dev/null || { echo "installing jq"; apt-get install -y -qq jq >/dev/null; }

$cargo build --release -q -p padlock-idp --bin padlock
$cargo build --release -q -p pam_padlock --lib --example login_latency
target=$($cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
bin=$target/release/padlock
so=$target/release/libpam_padlock.so
latency=$target/release/examples/login_latency
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

cp "$so" "$work/pam_padlock.so"
strip --strip-all "$work/pam_padlock.so"
stripped=$(stat -c %s "$work/pam_padlock.so")
echo "pam_padlock.so stripped: $stripped bytes ($(awk -v b="$stripped" 'BEGIN {printf "%.2f", b/1048576}') MiB; unstripped build $(stat -c %s "$so") bytes)"

# --- Padlock -------------------------------------------------------------------------------------
printf '[lockout]\nmax_failures = 100\n' > "$work/padlock.toml"
echo "bench padlock.toml: [lockout] max_failures = 100 (default 10) for the wrong-code load; every other limit at its default"
(cd "$work" && PADLOCK_LOG=warn exec "$bin" serve -c padlock.toml --data-dir data --listen 127.0.0.1:0 > out 2> err) &
pid=$!
until grep -q "Padlock listening" "$work/out" 2>/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^Padlock listening on \([^ ]*\).*/\1/p' "$work/out")
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$pid/status"; }
op() { (cd "$work" && "$bin" "$@" --credentials data/operator.json --json); }

setup_started=$(date +%s.%N)
op tenant create Bench >/dev/null
op tenant 2fa Bench --enable --methods sms-email,totp >/dev/null
cb=https://panel.bench.example/cb
client_id=$(op client add --name Panel --redirect-uri "$cb" | jq -r .client_id)
host=$(op pam-host add --tenant Bench --name bench)
umask 077
echo "$host" | jq -r .host_secret > "$work/host.secret"
cat > "$work/pam.toml" <<EOF
url = "$url"
host_id = "$(echo "$host" | jq -r .host_id)"
host_secret_file = "$work/host.secret"
timeout_secs = 10
EOF
echo "correct-horse-battery-staple" > "$work/pw"

names() { for ((i = 1; i <= users; i++)); do printf 'u%03d\n' "$i"; done; }
export bin work url client_id cb
add_user() {
  (cd "$work" && "$bin" user add --tenant Bench --email "$1@bench.example" --password-file pw \
    --unix-name "$1" --credentials data/operator.json --json >/dev/null)
}
# One person enrolling an authenticator app in a browser; prints "<unix name> <secret in hex>".
enrol() {
  local name=$1 email=$1@bench.example jar=$work/jar.$1 loc flow code csrf secret
  loc=$(curl -sf -o /dev/null -c "$jar" -w '%{redirect_url}' -G "$url/authorize" \
    -d response_type=code --data-urlencode "client_id=$client_id" \
    --data-urlencode "redirect_uri=$cb" -d scope=openid -d state=s)
  flow=${loc##*flow=}
  loc=$(curl -sf -o /dev/null -b "$jar" -c "$jar" -w '%{redirect_url}' "$url/login" \
    --data-urlencode "flow=$flow" --data-urlencode "email=$email" \
    --data-urlencode "password=correct-horse-battery-staple")
  [[ $loc == */login/factor* ]] || { echo "$name: password step: $loc" >&2; return 1; }
  code=$(grep -lx "To: $email" "$work"/data/outbox/*-email.txt | xargs cat | grep 'sign-in code\.' | cut -c1-6)
  curl -sf -o /dev/null -b "$jar" -c "$jar" "$url/login/factor" \
    --data-urlencode "flow=$flow" --data-urlencode "code=$code"
  csrf=$(curl -sf -b "$jar" "$url/account/security" | grep -o 'name="csrf" value="[^"]*"' | head -1 | cut -d'"' -f4)
  secret=$(curl -sf -b "$jar" "$url/account/security/totp/start" --data-urlencode "csrf=$csrf" \
    | grep -o 'otpauth://totp/[^"]*' | head -1 | sed 's/.*secret=\([A-Z2-7]*\).*/\1/')
  curl -sf -b "$jar" "$url/account/security/totp/confirm" --data-urlencode "csrf=$csrf" \
    --data-urlencode "code=$(oathtool --totp -b "$secret")" | grep -q "authenticator app is set up" \
    || { echo "$name: TOTP confirm failed" >&2; return 1; }
  echo "$name $(printf %s "$secret" | base32 -d | od -An -tx1 | tr -d ' \n')"
}
export -f add_user enrol
names | xargs -P 2 -I{} bash -c 'add_user {}'
names | xargs -P 2 -I{} bash -c 'enrol {}' > "$work/users"
[[ $(wc -l < "$work/users") == "$users" ]] || { echo "enrolled $(wc -l < "$work/users") of $users" >&2; exit 1; }
echo "setup: $users users created and enrolled in TOTP over HTTP in $(awk -v s="$setup_started" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e-s}') s"

# --- Latency and threads -------------------------------------------------------------------------
# A step is accepted once per user: start in the step after the enrolments'.
sleep "$((30 - $(date +%s) % 30))"
"$latency" "$work/pam.toml" "$work/users"

# --- Requests per second -------------------------------------------------------------------------
export BASIC="Basic $(printf '%s:%s' "$(jq -r .host_id <<< "$host")" "$(cat "$work/host.secret")" | base64 -w0)"
for name in $(names); do
  curl -sf -H "Authorization: $BASIC" -H 'Content-Type: application/json' "$url/pam/v1/preauth" \
    -d "{\"user\":\"$name\",\"service\":\"sudo\",\"tty\":\"pts/0\"}" | jq -r .txid
done > "$work/txids"
# In each wrk thread: the answers by kind, and the wall-clock time from the first request to the
# last answer (LuaJIT's ffi), since a thread that stops early still counts the whole -d in wrk's
# own Requests/sec. done() prints both.
cat > "$work/count.lua" <<'LUA'
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *t);
]]
local ts = ffi.new("bench_timespec")
function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {}; t0 = now(); t1 = t0 end
local function kind(status, body)
  if status ~= 200 then return "HTTP " .. status end
  local result = body:match('"result":"(%a+)"') or "other"
  if result == "deny" then
    if body:find("locked", 1, true) then return "deny (locked)" end
    if body:find("expired", 1, true) then return "deny (transaction over)" end
  end
  return result
end
function response(status, headers, body)
  local k = kind(status, body)
  counts[k] = (counts[k] or 0) + 1
  t1 = now()
end
function done(summary, latency, requests)
  local total, all, first, last = 0, {}, math.huge, 0
  for _, t in ipairs(threads) do
    for k, n in pairs(t:get("counts")) do all[k] = (all[k] or 0) + n; total = total + n end
    first = math.min(first, t:get("t0")); last = math.max(last, t:get("t1"))
  end
  local parts = {}
  for k, n in pairs(all) do table.insert(parts, string.format("%s %d (%.1f%%)", k, n, 100 * n / total)) end
  table.sort(parts)
  io.write(string.format("answered: %d in %.2f s = %.0f req/s\n", total, last - first, total / (last - first)))
  io.write("answers: " .. table.concat(parts, ", ") .. "\n")
end
LUA
cat > "$work/preauth.lua" <<LUA
dofile("$work/count.lua")
local n, i = $users, 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BASIC")
function request()
  i = i % n + 1
  return wrk.format(nil, "/pam/v1/preauth", nil,
    string.format('{"user":"u%03d","service":"sudo","tty":"pts/0"}', i))
end
LUA
# Wrong codes round-robin over the transactions, 98 per user at most (max_failures 100 less 2:
# after stop() each connection may still send one more, one per transaction as the cycle goes on),
# then the thread stops: no user locks, every answer is a real check. One wrk thread, so the
# cycle and its count are one.
{
  echo "dofile(\"$work/count.lua\")"
  echo "local txids = {"
  sed 's/.*/"&",/' "$work/txids"
  echo "}"
  cat <<'LUA'
local i, sent, budget = 0, 0, 98 * #txids
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BASIC")
function request()
  sent = sent + 1
  if sent == budget then wrk.thread:stop() end
  i = i % #txids + 1
  return wrk.format(nil, "/pam/v1/auth", nil,
    string.format('{"txid":"%s","answer":"000000"}', txids[i]))
end
LUA
} > "$work/auth.lua"

conns=${WRK_CONNS:-32}
((conns <= users)) || conns=$users
run() { # $1 label, $2 lua script, $3 wrk threads
  local out p50 p99 errs
  out=$(wrk -t"$3" -c"$conns" -d"${secs}s" --latency -s "$2" "$url/")
  p50=$(awk '$1=="50%" {print $2}' <<< "$out")
  p99=$(awk '$1=="99%" {print $2}' <<< "$out")
  errs=$(grep -E 'Socket errors|Non-2xx' <<< "$out" | tr -s ' ' | paste -sd';' || true)
  echo "$1: $(sed -n 's/^answered: .* = //p' <<< "$out") ($(sed -n 's/^answered: //; s/ = .*//p' <<< "$out")), p50 ${p50}, p99 ${p99}; $(grep '^answers:' <<< "$out")${errs:+; $errs}"
}
run "/pam/v1/preauth ($users TOTP users, $conns connections, ${secs} s)" "$work/preauth.lua" "${WRK_THREADS:-1}"
run "/pam/v1/auth (wrong TOTP code, $users transactions, $conns connections, at most ${secs} s or 98 tries a user)" "$work/auth.lua" 1
echo "padlock RSS after the loads: $(rss)"
kill -TERM "$pid"
wait || true
echo "padlock stopped"
