#!/usr/bin/env bash
# Rewrites the reference block of docs/configuration.md from idp/src/config_example.toml (a unit test
# fails when the two differ).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import re
doc = open("docs/configuration.md").read()
example = open("idp/src/config_example.toml").read()
doc = re.sub(r"```toml\n.*?```", lambda _: "```toml\n" + example + "```", doc, count=1, flags=re.S)
open("docs/configuration.md", "w").write(doc)
PY
