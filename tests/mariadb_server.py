"""
A private MariaDB server for tests that stop and restart the database: its own
data directory, port and socket, started from Debian's ``mariadbd`` binary. It
runs with ``--skip-grant-tables`` (any user, no password) and only listens on
127.0.0.1.
"""

import os
import shutil
import socket
import subprocess
import time

import pymysql


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _binary(*names):
    for name in names:
        path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
        if path:
            return path
    raise RuntimeError(f"none of {names} is installed (apt-get install mariadb-server)")


class PrivateMariaDB:
    def __init__(self, root):
        self.root = root
        self.datadir = os.path.join(root, "data")
        self.socket = os.path.join(root, "mysqld.sock")
        self.port = free_port()
        self.proc = None
        self.log = os.path.join(root, "mysqld.log")

    @property
    def url(self):
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/kiosk_outage?connect_timeout=3"

    def install(self):
        os.makedirs(self.datadir, exist_ok=True)
        subprocess.run(
            [
                _binary("mariadb-install-db", "mysql_install_db"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--skip-test-db",
                "--auth-root-authentication-method=normal",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self, timeout=60):
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [
                _binary("mariadbd", "mysqld"),
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                f"--socket={self.socket}",
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-grant-tables",
                f"--pid-file={os.path.join(self.root, 'mysqld.pid')}",
                f"--log-error={self.log}",
                "--innodb-buffer-pool-size=32M",
                "--skip-log-bin",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1).close()
                return
            except pymysql.err.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"private MariaDB did not start; see {self.log}") from None
                time.sleep(0.3)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.proc = None

    def kill(self):
        """SIGKILL the server, as a crash or a pulled plug would stop it."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        self.proc = None

    def sql(self, statement):
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", autocommit=True)
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement)
                return cursor.fetchall()
        finally:
            conn.close()
