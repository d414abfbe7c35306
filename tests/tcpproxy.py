"""A TCP proxy on localhost that a test can cut, blackhole and restore.

``cut`` is a database that went away (connections drop, new ones are refused);
``blackhole`` is a database that hangs: connections stay open and new ones are
accepted, but nothing is forwarded either way until ``restore``. Bytes sent
meanwhile wait in the proxy and are delivered on restore, as a stalled server
that wakes up would answer them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class CuttableProxy:
    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.cut_off = threading.Event()
        self.flowing = threading.Event()  # cleared: blackholed
        self.flowing.set()
        self.accepted = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> CuttableProxy:
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.flowing.set()
        self.cut()
        self.listener.close()

    def cut(self) -> None:
        """Drop every connection and refuse new ones, as a dead server would."""
        self.cut_off.set()
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
            self._open.clear()

    def blackhole(self) -> None:
        """Accept and hold every connection, forward nothing: a server that never answers."""
        self.flowing.clear()

    def restore(self) -> None:
        self.cut_off.clear()
        self.flowing.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.cut_off.is_set():
                client.close()
                continue
            with self._lock:
                self._open.add(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self.flowing.wait()  # a blackholed server accepted, and says nothing
        try:
            server = socket.create_connection(self.upstream, timeout=5)
            server.settimeout(None)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.add(server)
        for a, b in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self.flowing.wait()  # blackholed: held here until restore
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()
