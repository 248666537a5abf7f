"""A loopback TCP proxy that cuts connections on purpose, to test what a client does when
the network fails in the middle of a call.

    with TcpProxy("127.0.0.1", server_port) as proxy:
        url = f"postgresql://user@127.0.0.1:{proxy.port}/db"
        proxy.cut_after(upstream=120)     # the next bytes sent to the server: 120 pass, then cut
        proxy.cut_after(downstream=30)    # or: 30 bytes of the server's answer pass, then cut
        proxy.cut_all()                   # cut every open connection now

A cut closes both sides of the connection it hits (the client sees the connection reset or
closed; the server sees its client go away) and disarms itself; new connections pass
freely. `cuts` counts the cuts made. Threads only, no dependency.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Self

Pair = tuple[socket.socket, socket.socket]  # (client side, server side)


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[Pair] = []
        self._budget: dict[str, int | None] = {"up": None, "down": None}
        self.cuts = 0
        self._closed = False
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def cut_after(self, *, upstream: int | None = None, downstream: int | None = None) -> None:
        """Arm a cut: after `upstream` more bytes toward the server (or `downstream` more
        toward the client) have passed, on whichever connection carries them."""
        with self._lock:
            self._budget = {"up": upstream, "down": downstream}

    def disarm(self) -> None:
        with self._lock:
            self._budget = {"up": None, "down": None}

    def cut_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self.cuts += len(pairs)
        for pair in pairs:
            _close(*pair)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut_all()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, server)
            with self._lock:
                self._pairs.append(pair)
            for way, source, sink in (("up", client, server), ("down", server, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink, way, pair), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, way: str, pair: Pair) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            cut = False
            with self._lock:
                budget = self._budget[way]
                if budget is not None:
                    if len(data) > budget:
                        data = data[:budget]
                        cut = True
                        self._budget = {"up": None, "down": None}
                        self.cuts += 1
                    else:
                        self._budget[way] = budget - len(data)
            try:
                if data:
                    sink.sendall(data)
            except OSError:
                break
            if cut:
                break
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        _close(*pair)


def _close(*sockets: socket.socket) -> None:
    for s in sockets:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()
