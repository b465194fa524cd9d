#!/usr/bin/env bash
# The linters: ruff check and ruff format --check over the whole checkout, with
# the configuration in pyproject.toml ([tool.ruff]). Exits non-zero when either
# reports something; both always run, so one pass shows everything.
#
# Uses .venv/bin/ruff, the version pinned by the "test" extra (scripts/test.sh
# installs it). On a clone without .venv it installs just that ruff into .venv.
# To fix what it reports: .venv/bin/ruff check --fix . && .venv/bin/ruff format .
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
RUFF=.venv/bin/ruff

if [ ! -x "$RUFF" ]; then
    pin="$(grep -oE '"ruff==[^"]+"' pyproject.toml | tr -d '"')"
    echo "== installing ${pin:-ruff} into .venv"
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check "${pin:-ruff}"
fi

status=0
echo "== ruff check"
"$RUFF" check . || status=1
echo "== ruff format --check"
"$RUFF" format --check . || status=1
[ "$status" -eq 0 ] && echo "== lint passed"
exit "$status"
