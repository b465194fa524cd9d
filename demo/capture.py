"""
A UDP listener that collects Wake-on-LAN packets in a background thread, for
the demo and the benchmarks.
"""

import socket
import threading
import time


class PacketCapture:
    """Collects ``(arrival time, payload, source address)`` on a free UDP port."""

    def __init__(self, host="0.0.0.0", port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 64 * 1024 * 1024)  # SO_RCVBUFFORCE (root)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.packets.append((time.monotonic(), data, addr[0]))

    def settle(self, quiet=1.0, limit=60):
        """Wait until nothing has arrived for ``quiet`` seconds; return the packets."""
        deadline = time.monotonic() + limit
        seen = -1
        while time.monotonic() < deadline:
            if len(self.packets) == seen:
                break
            seen = len(self.packets)
            time.sleep(quiet)
        return list(self.packets)

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()
