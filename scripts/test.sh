#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs MariaDB, nmap and
# chromium from Debian's packages when missing, starts MariaDB when it is not running,
# builds .venv with the project and its test extras from PyPI, runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -x).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PYTHON="${PYTHON:-python3}"

missing=()
command -v nmap >/dev/null 2>&1 || missing+=(nmap)
[ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
"$PYTHON" -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# The console's browser tests: Debian's chromium, driven by Playwright (never its own download).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

admin() { mariadb-admin "$@" 2>/dev/null || mysqladmin "$@" 2>/dev/null; }
if ! admin --protocol=socket -uroot ping >/dev/null && ! admin -h127.0.0.1 -uroot ping >/dev/null; then
    echo "== starting MariaDB"
    $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
    $SUDO service mariadb start >/dev/null 2>&1 \
        || $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
    for _ in $(seq 60); do
        admin -h127.0.0.1 -uroot ping >/dev/null || admin --protocol=socket -uroot ping >/dev/null && break
        sleep 1
    done
fi

# The tests connect over TCP. A stock Debian root account only accepts the unix
# socket, so give the tests their own account when root over TCP is refused.
if [ -z "${KIOSK_TEST_MYSQL_USER:-}" ]; then
    if mariadb -h127.0.0.1 -uroot -e 'SELECT 1' >/dev/null 2>&1; then
        export KIOSK_TEST_MYSQL_USER=root KIOSK_TEST_MYSQL_PASSWORD=""
    else
        echo "== creating the MariaDB account kiosk_test for the tests"
        $SUDO mariadb -uroot <<'SQL'
CREATE USER IF NOT EXISTS 'kiosk_test'@'127.0.0.1' IDENTIFIED BY 'kiosk_test';
GRANT ALL PRIVILEGES ON *.* TO 'kiosk_test'@'127.0.0.1';
SQL
        export KIOSK_TEST_MYSQL_USER=kiosk_test KIOSK_TEST_MYSQL_PASSWORD=kiosk_test
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"

[ "${KIOSK_LINT:-1}" = 0 ] || { echo "== lint (ruff)"; bash scripts/lint.sh; }

PYTEST=(.venv/bin/python -m pytest -p no:cacheprovider)
if [ "$#" -gt 0 ]; then
    echo "== running the tests: $*"
    exec "${PYTEST[@]}" "$@"
fi

# The whole suite, tier by tier: tests/faults last and alone (its timing
# assertions failed when it ran beside tests/integration on two cores).
rc=0
for tier in tests/unit tests/functional tests/integration tests/faults; do
    echo "== running $tier"
    "${PYTEST[@]}" "$tier" || rc=$?
done
if [ "$rc" -ne 0 ]; then
    echo "== the test suite FAILED (exit $rc)"
fi
exit "$rc"
