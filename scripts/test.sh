#!/usr/bin/env bash
# The whole Padlock test suite, runnable on a fresh machine: installs what the tests need (PAM
# headers, pamtester, pam_wrapper, oathtool, chromium, openssh-server; aiosmtpd as the SMTP server,
# paramiko as the SSH client, duo_client for the Duo stand-in's signature checks; playwright-core),
# builds the padlock binary and pam_padlock.so, checks formatting and lints, then runs every unit,
# conformance, property and end-to-end test. Run it as root (or with sudo at hand): the PAM tests
# make throwaway Unix users and run sshd.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Each phase prints how long it took; the total comes last.
started=$SECONDS
phase_started=$SECONDS
phase_name=""
phase() {
  [ -n "$phase_name" ] && echo "== ${phase_name}: $((SECONDS - phase_started)) s"
  phase_name="$1"
  phase_started=$SECONDS
  [ -n "$phase_name" ] && echo "== $phase_name"
  return 0
}
phase "installing what is missing"

apt_packages=(libpam0g-dev pamtester libpam-wrapper oathtool chromium openssh-server openssl)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "   apt: ${missing[*]}"
  as_root apt-get update -qq
  # The tests start their own sshd on a loopback port; keep the package from starting the system's
  # (policy-rc.d "101" = action forbidden; only while installing, and only if none is there).
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
  fi
  status=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || status=$?
  [ -z "$policy" ] || as_root rm -f "$policy"
  [ "$status" -eq 0 ] || exit "$status"
fi
# A real SMTP server for the email-code tests.
python3 -c "import aiosmtpd" 2>/dev/null || { echo "   pip: aiosmtpd"; python3 -m pip install --quiet --disable-pip-version-check aiosmtpd; }
# Duo's own Python client: the Duo stand-in verifies request signatures with it.
python3 -c "import duo_client" 2>/dev/null || { echo "   pip: duo_client"; python3 -m pip install --quiet --disable-pip-version-check duo_client; }
# A scripted SSH client for the sshd tests (pip, not apt: `python3` may not be Debian's).
python3 -c "import paramiko" 2>/dev/null || { echo "   pip: paramiko"; python3 -m pip install --quiet --disable-pip-version-check paramiko; }
# playwright-core drives Debian's Chromium for the page tests (no browser download).
[ -d tests/browser/node_modules/playwright-core ] || { echo "   npm: playwright-core"; (cd tests/browser && npm ci --silent --no-audit --no-fund); }
command -v cargo-clippy >/dev/null && command -v rustfmt >/dev/null || rustup component add clippy rustfmt

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo build (padlock, libpam_padlock.so, tests, benches)"
cargo build --workspace --all-targets --locked
phase "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "cargo test"
cargo test --workspace --locked
phase ""
echo "== all tests passed in $((SECONDS - started)) s"
