"""The i-PI socket protocol, client side: 12-byte headers, raw little-endian arrays, atomic units.

Only transport lives here; what to compute is the driver's business (``driver.py``).
"""

from __future__ import annotations

import socket
import sys
import time

import numpy as np

HEADER_LENGTH = 12
DEFAULT_UNIX_PREFIX = "/tmp/ipi_"  # i-PI's default for <ffsocket mode='unix'>


class IPIConnectionClosed(EOFError):
    """i-PI closed the connection (it exited or was killed)."""


def header(text: str) -> bytes:
    """A protocol header: upper case, padded to 12 bytes."""
    return text.upper().ljust(HEADER_LENGTH).encode()


class IPISocket:
    """A connected socket to an i-PI server."""

    def __init__(self, sock: socket.socket, address: str):
        self.sock = sock
        self.address = address

    @classmethod
    def connect(cls, unix: str | None = None, prefix: str = DEFAULT_UNIX_PREFIX, host: str | None = None,
                port: int | None = None, timeout_s: float = 600.0, retry_interval_s: float = 0.5,
                log=sys.stderr) -> IPISocket:
        """Connect to i-PI, retrying until it is up or ``timeout_s`` passes (ConnectionError then)."""
        if (unix is None) == (host is None):
            raise ValueError("give either a unix socket name or a host and port")
        if unix is not None:
            family, address, label = socket.AF_UNIX, prefix + unix, f"unix socket {prefix + unix}"
        else:
            if port is None:
                raise ValueError("an inet socket needs a port")
            family, address, label = socket.AF_INET, (host, int(port)), f"inet socket {host}:{port}"
        print(f"connecting to i-PI on {label} (waiting up to {timeout_s:.0f} s)", file=log, flush=True)
        deadline = time.monotonic() + timeout_s
        while True:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.connect(address)
                break
            except (FileNotFoundError, ConnectionRefusedError, OSError) as err:
                sock.close()
                if time.monotonic() >= deadline:
                    raise ConnectionError(f"could not connect to i-PI on {label} within {timeout_s:.0f} s: {err}") \
                        from err
                time.sleep(retry_interval_s)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        print(f"connected to i-PI on {label}", file=log, flush=True)
        return cls(sock, label)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise IPIConnectionClosed(f"i-PI closed the connection ({self.address})")
            got += k
        return bytes(buf)

    def recv_header(self) -> str:
        return self._recv_exact(HEADER_LENGTH).decode(errors="replace").strip()

    def recv_array(self, dtype: str, count: int) -> np.ndarray:
        dt = np.dtype(dtype)
        return np.frombuffer(self._recv_exact(dt.itemsize * count), dtype=dt).copy()

    def send(self, payload: bytes) -> None:
        self.sock.sendall(payload)

    def drain_and_close(self, wait_s: float = 0.2) -> None:
        """Read whatever i-PI already sent, then close, so i-PI sees a clean disconnect."""
        try:
            self.sock.settimeout(wait_s)
            while self.sock.recv(65536):
                pass
        except OSError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
