"""
The hop-1 file server of the master of masters: while a release is staged, it
serves the one release file on one configured address, under one random path
per relay that answers a single GET, and stops when staging ends.

Configuration (master of masters, ``kiosk:`` key):

``release_serve_address``
    IP address of this master the hop-1 server binds to and that the relays
    fetch from (the address their ``syndic_master`` points at). Default: the
    master's ``interface`` when it is one address; a master listening on all
    addresses (``0.0.0.0``, Salt's default) must set it.
``release_serve_port``
    TCP port of the hop-1 server (default 0: a free port for each staging).
"""

import contextlib
import functools
import http.server
import ipaddress
import logging
import os
import secrets
import shutil
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request

from salt_kiosk import config
from salt_kiosk.errors import KioskInputError
from salt_kiosk.files import CHUNK

log = logging.getLogger(__name__)


def serve_settings(opts):
    """
    ``(address, port)`` of the hop-1 server: ``kiosk:release_serve_address``
    (default: the master's ``interface`` when it is one address) and
    ``kiosk:release_serve_port`` (default 0: any free port). Never all
    addresses.
    """
    conf = config.section(opts)
    if "release_http" in conf:
        raise KioskInputError(
            f"kiosk:release_http {conf['release_http']!r} is no longer read: set kiosk:release_serve_address "
            "(the IP address of this master that the relays reach) and, for a fixed port, kiosk:release_serve_port"
        )
    value = conf.get("release_serve_address")
    if value is None:
        interface = opts.get("interface") or "0.0.0.0"
        try:
            default = ipaddress.ip_address(str(interface))
        except ValueError:
            default = None
        if default is None or default.is_unspecified:
            raise KioskInputError(
                f"kiosk:release_serve_address is not set and this master's interface {interface!r} is every "
                "address: set kiosk:release_serve_address to the IP address of this master that the relays reach "
                "(their syndic_master), so the release server does not listen on every network"
            )
        value = str(default)
    try:
        address = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        address = None
    if address is None or address.is_unspecified or address.is_multicast:
        raise KioskInputError(
            f"kiosk:release_serve_address {value!r} is not accepted: expected one IP address of this master "
            "that the relays reach, such as 10.0.0.10 (not 0.0.0.0 or ::, not a host name)"
        )
    port = conf.get("release_serve_port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise KioskInputError(
            f"kiosk:release_serve_port {port!r} is not a port: expected an integer 1-65535, or 0 for any free port"
        )
    return str(address), port


def _bind(address, port, handler=None):
    """The hop-1 server bound to ``address``/``port`` (a bare socket check when no handler)."""
    server_class = _Server6 if ":" in address else _Server
    try:
        if handler is None:
            with socket.socket(server_class.address_family, socket.SOCK_STREAM) as sock:
                sock.bind((address, port))
            return None
        return server_class((address, port), handler)
    except OSError as exc:
        raise KioskInputError(
            f"kiosk:release_serve_address {address!r} / kiosk:release_serve_port {port!r} cannot be used on this "
            f"master ({exc.strerror}): expected an address of this master and a free port"
        ) from exc


def check_serving(opts):
    """Check the hop-1 server's settings and that its address can be bound, before anything is read or recorded."""
    address, port = serve_settings(opts)
    _bind(address, port)
    return address, port


class _OneTimeHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET for a path handed out by :func:`serve_file`, once; 404 for anything else."""

    timeout = 60  # seconds a connection may stay idle: a stalled client cannot hold staging

    def __init__(self, *args, routes=None, lock=None, path=None, **kwargs):
        self.routes = routes
        self.lock = lock
        self.file = path
        super().__init__(*args, **kwargs)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        with self.lock:
            relay = self.routes.pop(self.path, None)
        if relay is None:
            log.warning(
                "release server: refused GET %.200r from %s (unknown or already used path)",
                self.path,
                self.client_address[0],
            )
            self.send_error(404)
            return
        log.info("release server: %s fetches %s for %s", self.client_address[0], os.path.basename(self.file), relay)
        with open(self.file, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            shutil.copyfileobj(handle, self.wfile, CHUNK)

    def log_message(self, fmt, *args):
        log.debug("release server: " + fmt, *args)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


@contextlib.contextmanager
def serve_file(opts, path, names):
    """
    Serve ``path`` over HTTP while the block runs, on
    :func:`serve_settings`' address and port, under one random path per item
    of ``names`` (the relays); each path answers one GET, every other request
    gets 404, and the server stops when the block ends. Yield ``{"urls":
    {name: url}, "address": "http://host:port"}``.
    """
    address, port = serve_settings(opts)
    routes = {}
    urls = {}
    for name in names:
        route = f"/{secrets.token_urlsafe(32)}/{urllib.parse.quote(os.path.basename(path))}"
        routes[route] = name
        urls[name] = route
    handler = functools.partial(_OneTimeHandler, routes=routes, lock=threading.Lock(), path=path)
    server = _bind(address, port, handler)
    host = f"[{address}]" if ":" in address else address
    base = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="kiosk-release-http", daemon=True)
    thread.start()
    try:
        yield {"urls": {name: base + route for name, route in urls.items()}, "address": base}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
