#!/usr/bin/env bash
# The whole Padlock test suite, runnable on a fresh machine: installs what the tests need (PAM
# headers, pamtester, pam_wrapper, oathtool, chromium; aiosmtpd as the SMTP server; playwright-core), builds the padlock binary and pam_padlock.so, checks formatting
# and lints, then runs every unit, conformance, property and end-to-end test.
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

apt_packages=(libpam0g-dev pamtester libpam-wrapper oathtool chromium)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "   apt: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# A real SMTP server for the email-code tests.
python3 -c "import aiosmtpd" 2>/dev/null || { echo "   pip: aiosmtpd"; python3 -m pip install --quiet --disable-pip-version-check aiosmtpd; }
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
