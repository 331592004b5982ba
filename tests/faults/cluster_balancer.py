"""The cluster's stand-in for a Kubernetes Service: a TCP balancer in front of the
nodes' AMQP ports (run in a process of its own by :class:`cluster_kit.BalancerProcess`;
nothing but the standard library here)."""

from __future__ import annotations

import asyncio
import contextlib
import threading


class TcpBalancer:
    """One local port in front of several: each new client connection goes to the
    first target that accepts it, starting one further round the list each time (a
    Kubernetes Service over the broker pods: a dead pod's port refuses, the next one
    takes the connection). Bytes are copied both ways until either side closes."""

    def __init__(self, targets: list[tuple[str, int]], port: int) -> None:
        self.targets = targets
        self.port = port
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cluster-lb")
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        #: Connections made, per target.
        self.routed: dict[tuple[str, int], int] = {}

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "balancer did not start"

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                with contextlib.suppress(Exception):
                    w.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        start = self._next
        self._next = (self._next + 1) % len(self.targets)
        for k in range(len(self.targets)):
            target = self.targets[(start + k) % len(self.targets)]
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection(*target), timeout=2)
            except (OSError, TimeoutError):
                continue
            self.routed[target] = self.routed.get(target, 0) + 1
            break
        if upstream is None:
            writer.close()
            return
        up_r, up_w = upstream
        self._writers.update((writer, up_w))

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                for x in (w, writer, up_w):
                    with contextlib.suppress(Exception):
                        x.close()

        try:
            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        finally:
            self._writers.discard(writer)
            self._writers.discard(up_w)
