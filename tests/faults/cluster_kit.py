"""A three-node RabbitMQ cluster of the fault suite's own, a partition of one node, and
a TCP load balancer in front of the nodes (what a Kubernetes Service is to the pods).

::

    services ──▶ TcpBalancer (one port) ──▶ node 1  127.0.0.1:<amqp 1>   dist 127.0.0.11
                  first node that accepts    node 2  127.0.0.1:<amqp 2>   dist 127.0.0.12
                                             node 3  127.0.0.1:<amqp 3>   dist 127.0.0.13

Each node: own node name (long names, ``fcc<k>-<run>@127.0.0.<n>``), own AMQP and
distribution ports, data, logs and config; one Erlang cookie and one ``epmd`` of the
cluster's own (``ERL_EPMD_PORT``, so the shared epmd is never used); ``pause_minority``
and a short ``net_ticktime``.

**Partition**: Erlang distribution between nodes runs between their own loopback
addresses (``inet_dist_use_interface`` for the listener, ``inet_dist_connect_options``
``{ip, ...}`` for the connections a node opens), so a ``tc`` filter on ``lo`` (egress,
``clsact``) that drops packets between one node's address and the others' cuts that
node off from the cluster and from nothing else: clients (AMQP on 127.0.0.1) and the
CLI tools (also from 127.0.0.1) still reach it. Healing deletes the filters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from faults_kit import RABBIT_BIN, RabbitNode, free_port, port_answers

#: Loopback addresses of the nodes' distribution (127.0.0.0/8 is all on ``lo``).
DIST_HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
#: ``tc`` filter preferences of this suite's partition filters (removed by pref).
_TC_PREF = 29100


def _erl_ip(host: str) -> str:
    return "{" + host.replace(".", ",") + "}"


class ClusterNode(RabbitNode):
    """One node of the cluster: a :class:`RabbitNode` with long names, a distribution
    address of its own, the cluster's cookie and epmd, and ``pause_minority``."""

    def __init__(
        self, base: Path, *, index: int, run: str, home: Path, epmd_port: int, ticktime: int
    ) -> None:
        super().__init__(base)
        self.index = index
        self.dist_host = DIST_HOSTS[index]
        self.name = f"fcc{index + 1}-{run}@{self.dist_host}"
        ip = _erl_ip(self.dist_host)
        (base / "rabbitmq.conf").write_text(
            "cluster_partition_handling = pause_minority\n"
            f"net_ticktime = {ticktime}\n"
            "loopback_users = none\n"
            "log.console = false\n"
            "log.file.level = info\n"
        )
        self.env.update(
            {
                "HOME": str(home),
                "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_USE_LONGNAME": "true",
                "ERL_EPMD_PORT": str(epmd_port),
                "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                    f"-kernel inet_dist_use_interface {ip} "
                    f"-kernel inet_dist_connect_options [{{ip,{ip}}}]"
                ),
            }
        )

    def stop_gracefully(self, timeout_s: float = 60) -> None:
        """``rabbitmqctl stop``: the node leaves as in a rolling restart."""
        self.ctl("stop", timeout=timeout_s)
        if self.proc is not None:
            self.proc.wait(timeout=timeout_s)


class RabbitCluster:
    """Three :class:`ClusterNode` joined into one cluster; ``url()`` goes through a
    :class:`TcpBalancer` over their AMQP ports."""

    def __init__(self, base: Path, size: int = 3, ticktime: int = 4) -> None:
        self.base = base
        self.run = uuid.uuid4().hex[:6]
        home = base / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text("FAULTSCLUSTER" + uuid.uuid4().hex)
        cookie.chmod(0o400)
        self.epmd_port = free_port()
        self.nodes = [
            ClusterNode(
                base / f"n{i + 1}",
                index=i,
                run=self.run,
                home=home,
                epmd_port=self.epmd_port,
                ticktime=ticktime,
            )
            for i in range(size)
        ]
        self.balancer = TcpBalancer([n.port for n in self.nodes])
        self._partitioned: ClusterNode | None = None
        self._reaper: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> float:
        """Start every node (in parallel), join the others to the first; seconds taken."""
        started = time.monotonic()
        self._reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER, str(self.base), str(self.epmd_port), str(_TC_PREF)],
            stdin=subprocess.PIPE,
        )
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda n: n.start(timeout_s=120), self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        self.wait_members(len(self.nodes))
        self.balancer.start()
        return time.monotonic() - started

    def stop(self) -> None:
        """Everything down, whatever state the nodes are in (partition healed first)."""
        with contextlib.suppress(Exception):
            self.heal()
        self.balancer.stop()
        for node in self.nodes:
            with contextlib.suppress(Exception):
                _kill_node(node)
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        with contextlib.suppress(Exception):
            subprocess.run(
                [epmd, "-port", str(self.epmd_port), "-kill"],
                capture_output=True,
                timeout=10,
                check=False,
            )
        if self._reaper is not None and self._reaper.stdin is not None:
            self._reaper.stdin.close()
            self._reaper.wait(30)

    def url(self, vhost: str = "/") -> str:
        from urllib.parse import quote

        return f"amqp://guest:guest@127.0.0.1:{self.balancer.port}/{quote(vhost, safe='')}"

    # ------------------------------------------------------------ queries

    def any_running(self) -> ClusterNode:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None and port_answers(node.port):
                return node
        raise AssertionError("no node of the cluster is running")

    def ctl(self, *args: str, timeout: float = 60) -> str:
        return self.any_running().ctl(*args, timeout=timeout)

    def running_members(self, via: ClusterNode | None = None) -> list[str]:
        import json

        out = (via or self.any_running()).ctl("cluster_status", "--formatter", "json")
        return list(json.loads(out).get("running_nodes", []))

    def wait_members(self, count: int, timeout_s: float = 90) -> float:
        """Until ``count`` nodes run in the cluster (as every running node sees it)."""
        started = time.monotonic()
        while True:
            with contextlib.suppress(Exception):
                views = [
                    len(self.running_members(n))
                    for n in self.nodes
                    if n.proc is not None and n.proc.poll() is None
                ]
                if views and all(v == count for v in views):
                    return time.monotonic() - started
            assert time.monotonic() - started < timeout_s, f"cluster not at {count} nodes"
            time.sleep(0.5)

    def queues(self, vhost: str) -> dict[str, dict[str, Any]]:
        """Queue name → ``{"leader", "members", "online", "consumers", "messages"}``."""
        import json

        out = self.ctl(
            "list_queues",
            "-p",
            vhost,
            "name",
            "type",
            "leader",
            "members",
            "online",
            "consumers",
            "messages",
            "--formatter",
            "json",
        )
        return {q["name"]: q for q in json.loads(out)}

    def node_named(self, name: str) -> ClusterNode:
        return next(n for n in self.nodes if n.name == name)

    def leader_of(self, vhost: str, queue: str) -> ClusterNode:
        return self.node_named(str(self.queues(vhost)[queue]["leader"]))

    def consumers(self, vhost: str) -> dict[str, int]:
        return {name: int(q.get("consumers") or 0) for name, q in self.queues(vhost).items()}

    def add_vhost(self) -> str:
        vhost = f"cluster-{uuid.uuid4().hex[:8]}"
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return vhost

    # ------------------------------------------------------------ partition

    def partition(self, node: ClusterNode) -> None:
        """Drop every packet between ``node``'s distribution address and the others'."""
        _tc("qdisc", "add", "dev", "lo", "clsact")  # fails harmlessly when there already
        pref = _TC_PREF
        for other in self.nodes:
            if other is node:
                continue
            for src, dst in ((node.dist_host, other.dist_host), (other.dist_host, node.dist_host)):
                match = ["match", "ip", "src", f"{src}/32", "match", "ip", "dst", f"{dst}/32"]
                _tc(
                    *("filter", "add", "dev", "lo", "egress", "pref", str(pref)),
                    *("protocol", "ip", "u32", *match, "action", "drop"),
                    check=True,
                )
                pref += 1
        self._partitioned = node

    def heal(self) -> None:
        """Remove this suite's partition filters (and ``clsact`` if nothing else is on it)."""
        for pref in range(_TC_PREF, _TC_PREF + 2 * len(self.nodes)):
            _tc("filter", "del", "dev", "lo", "egress", "pref", str(pref))
        left = _tc("filter", "show", "dev", "lo", "egress") + _tc(
            "filter", "show", "dev", "lo", "ingress"
        )
        if not left.strip():
            _tc("qdisc", "del", "dev", "lo", "clsact")
        self._partitioned = None


def _tc(*args: str, check: bool = False) -> str:
    out = subprocess.run(["tc", *args], check=check, capture_output=True, text=True)
    return out.stdout


#: Run beside the test process, its stdin a pipe from it: when the pipe closes (the
#: cluster stopped, or the test process gone, even by ``os._exit`` or SIGKILL), every
#: node still running is SIGKILLed, the cluster's epmd stopped and the partition filters
#: removed. argv: base directory, epmd port, first tc filter pref.
_REAPER = """
import os, signal, subprocess, sys
from pathlib import Path
sys.stdin.buffer.read()
base, epmd, pref = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for pid_file in base.glob("n*/beam.pid"):
    try:
        pid = int(pid_file.read_text().strip())
        # only that node's VM (its environment names this pid file), never a process
        # that got the number since
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RABBITMQ_PID_FILE={pid_file}".encode() in env:
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass
for p in range(pref, pref + 6):
    subprocess.run(["tc", "filter", "del", "dev", "lo", "egress", "pref", str(p)],
                   check=False, capture_output=True)
subprocess.run(["epmd", "-port", epmd, "-kill"], check=False, capture_output=True)
"""


def _kill_node(node: RabbitNode) -> None:
    if node.proc is None or node.proc.poll() is not None:
        return
    with contextlib.suppress(OSError, ValueError):
        os.kill(node.beam_pid(), signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        node.proc.wait(timeout=20)
    if node.proc.poll() is None:
        node.proc.kill()
        node.proc.wait(timeout=10)


def ctl_path() -> Path:
    return RABBIT_BIN / "rabbitmqctl"


# --------------------------------------------------------------------------- balancer


class TcpBalancer:
    """One local port in front of several: each new client connection goes to the
    first target that accepts it, starting one further round the list each time (a
    Kubernetes Service over the broker pods: a dead pod's port refuses, the next one
    takes the connection). Bytes are copied both ways until either side closes."""

    def __init__(self, targets: list[int]) -> None:
        self.targets = targets
        self.port = free_port()
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cluster-lb")
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        #: Connections made, per target port.
        self.routed: dict[int, int] = {}

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
            port = self.targets[(start + k) % len(self.targets)]
            try:
                upstream = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), timeout=2
                )
            except (OSError, TimeoutError):
                continue
            self.routed[port] = self.routed.get(port, 0) + 1
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
