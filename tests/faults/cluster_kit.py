"""A three-node RabbitMQ cluster of the fault suite's own, a partition of one node, and
a TCP load balancer in front of the nodes (what a Kubernetes Service is to the pods).

::

    services ──▶ TcpBalancer ──veth──▶ network namespace fcc-<run>
    (127.0.0.1)  next node that       node 1  AMQP 10.213.x.2:<p1>  dist 127.0.0.11
                 accepts              node 2  AMQP 10.213.x.2:<p2>  dist 127.0.0.12
                                      node 3  AMQP 10.213.x.2:<p3>  dist 127.0.0.13
                                      epmd of the cluster's own (ERL_EPMD_PORT)

Each node: own long name (``fcc<k>-<run>@127.0.0.1<k>``), AMQP and distribution
ports, data, logs and config; one Erlang cookie; ``pause_minority`` and a short
``net_ticktime``. The nodes run in a network namespace of their own (``ip netns``,
joined to the host by a veth pair), so nothing here touches the host's network
configuration, and the shared epmd and RabbitMQ are never seen.

**Partition**: each node's Erlang distribution listens on and connects from its own
loopback address (``inet_dist_use_interface``, ``inet_dist_connect_options``
``{ip, ...}``), so ``blackhole`` routing rules in the namespace between one node's
address and the others' cut that node off from the cluster and from nothing else:
clients (through the veth address) and the CLI tools still reach it. Healing deletes
the rules. (``tc`` drop actions and netfilter are not available on every host, this
one included; routing rules in a namespace of one's own are.)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from faults_kit import RABBIT_BIN, RabbitNode, free_port

#: Loopback addresses of the nodes' distribution (127.0.0.0/8 is all on ``lo``).
DIST_HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
#: The :class:`ErlAgent`'s distribution address (no partition rule names it).
AGENT_HOST = "127.0.0.19"
#: Erlang VM flags of every node: no busy-waiting schedulers (the machine is shared).
_QUIET_VM = "+sbwt none +sbwtdcpu none +sbwtdio none"
#: Preferences of the partition's routing rules (before the local table's, at 100).
_RULE_PREF = 10


def _erl_ip(host: str) -> str:
    return "{" + host.replace(".", ",") + "}"


def answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.3):
        return True
    return False


class NetNs:
    """A network namespace of the cluster's own, joined to the host by a veth pair:
    the nodes run in it (their AMQP ports on ``ns_ip``, reachable from the host), and
    its routing rules are the cluster's to change (the host's are never touched)."""

    def __init__(self, run: str) -> None:
        self.name = f"fcc-{run}"
        octet = int(run[:2], 16)
        self.host_ip, self.ns_ip = f"10.213.{octet}.1", f"10.213.{octet}.2"
        self.host_if, self.ns_if = f"fcc{run}h", f"fcc{run}n"

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def ip(self, *args: str, check: bool = True) -> None:
        subprocess.run([*self.prefix(), "ip", *args], check=check, capture_output=True, timeout=30)

    def create(self) -> None:
        def host(*args: str) -> None:
            subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

        host("netns", "add", self.name)
        host("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        host("link", "set", self.ns_if, "netns", self.name)
        host("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        host("link", "set", self.host_if, "up")
        self.ip("link", "set", "lo", "up")
        self.ip("addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        self.ip("link", "set", self.ns_if, "up")
        # the local table after the rules a partition adds (it comes first by default)
        self.ip("rule", "add", "pref", "100", "lookup", "local")
        self.ip("rule", "del", "pref", "0")

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, check=False)


class ClusterNode(RabbitNode):
    """One node of the cluster: a :class:`RabbitNode` run in the cluster's network
    namespace, with a long name on a distribution address of its own, the cluster's
    cookie and epmd, and ``pause_minority``."""

    def __init__(
        self,
        base: Path,
        *,
        index: int,
        run: str,
        home: Path,
        epmd_port: int,
        ticktime: int,
        netns: NetNs,
    ) -> None:
        super().__init__(base)
        self.index = index
        self.netns = netns
        self.host = netns.ns_ip
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
                "RABBITMQ_NODE_IP_ADDRESS": self.host,
                "ERL_EPMD_PORT": str(epmd_port),
                "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                    f"{_QUIET_VM} -kernel inet_dist_use_interface {ip} "
                    f"-kernel inet_dist_connect_options [{{ip,{ip}}}]"
                ),
            }
        )

    def answers(self) -> bool:
        return answers(self.host, self.port)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 120) -> float:
        """Start (or restart on the same data) in the namespace; seconds until AMQP."""
        started = time.monotonic()
        log = open(self.base / "server.out", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [*self.netns.prefix(), str(RABBIT_BIN / "rabbitmq-server")],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.base,
        )
        log.close()
        while time.monotonic() - started < timeout_s:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"rabbitmq node exited: {(self.base / 'server.out').read_text()[-2000:]}"
                )
            if self.answers():
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not start in {timeout_s}s")

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM: a crash, not a shutdown."""
        os.kill(self.beam_pid(), signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def ctl(self, *args: str, timeout: float = 60) -> str:
        out = subprocess.run(
            [*self.netns.prefix(), str(RABBIT_BIN / "rabbitmqctl"), "-n", self.name, "-q", *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return out.stdout

    def stop_gracefully(self, timeout_s: float = 60) -> None:
        """``rabbitmqctl stop``: the node leaves as in a rolling restart."""
        self.ctl("stop", timeout=timeout_s)
        if self.proc is not None:
            self.proc.wait(timeout=timeout_s)


class RabbitCluster:
    """Three :class:`ClusterNode` joined into one cluster in a network namespace of its
    own; ``url()`` goes through a :class:`TcpBalancer` over their AMQP ports."""

    def __init__(self, base: Path, size: int = 3, ticktime: int = 4) -> None:
        self.base = base
        self.run = uuid.uuid4().hex[:6]
        self.netns = NetNs(self.run)
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
                netns=self.netns,
            )
            for i in range(size)
        ]
        self.balancer = BalancerProcess([(n.host, n.port) for n in self.nodes])
        self.agent = ErlAgent(self.run, home, self.epmd_port, self.netns, ticktime)
        self._reaper: subprocess.Popen[bytes] | None = None
        self._starting: Future[float] | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self, vhost: str | None = None) -> float:
        """Start every node (in parallel), join the others to the first, add ``vhost``,
        and only then open the balancer (a client connecting before gets its connection
        refused and retries); seconds taken."""
        started = time.monotonic()
        self._reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER, str(self.base), self.netns.name, self.netns.host_if],
            stdin=subprocess.PIPE,
        )
        self.netns.create()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda n: n.start(timeout_s=420), self.nodes))  # as a restart
        self.agent.start()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            # what rabbitmqctl stop_app, join_cluster and start_app call
            self.agent.rpc(node.name, "rabbit", "stop", timeout=120)
            self.agent.rpc(
                node.name, "rabbit_mnesia", "join_cluster", f"'{first.name}', disc", timeout=120
            )
            self.agent.rpc(node.name, "rabbit", "start", timeout=180)
        self.wait_members(len(self.nodes))
        if vhost is not None:
            self.add_vhost(vhost)
        self.balancer.start()
        return time.monotonic() - started

    def start_in_background(self, vhost: str | None = None) -> None:
        """:meth:`start` in a thread of its own (the caller starts the platform meanwhile);
        :meth:`wait_started` returns its seconds or raises its error."""
        pool = ThreadPoolExecutor(1, thread_name_prefix="cluster-start")
        self._starting = pool.submit(self.start, vhost)
        pool.shutdown(wait=False)

    def wait_started(self) -> float:
        assert self._starting is not None, "start_in_background() first"
        return self._starting.result()

    def stop(self) -> None:
        """Everything down, whatever state the nodes are in: the nodes killed, the
        namespace (its epmd, the veth pair) removed (by the reaper, which also does it
        when the test process dies without getting here)."""
        if self._starting is not None:
            # a start still going on would open the balancer after this (each of its
            # steps has a deadline)
            with contextlib.suppress(Exception):
                self._starting.result()
        self.balancer.stop()
        self.agent.stop()
        for node in self.nodes:
            with contextlib.suppress(Exception):
                _kill_node(node)
        if self._reaper is not None and self._reaper.stdin is not None:
            self._reaper.stdin.close()
            self._reaper.wait(60)
        else:
            self.netns.delete()

    def url(self, vhost: str = "/") -> str:
        from urllib.parse import quote

        return f"amqp://guest:guest@127.0.0.1:{self.balancer.port}/{quote(vhost, safe='')}"

    # ------------------------------------------------------------ queries

    def any_running(self) -> ClusterNode:
        for node in self.nodes:
            if node.running() and node.answers():
                return node
        raise AssertionError("no node of the cluster is running")

    def ctl(self, *args: str, timeout: float = 60) -> str:
        return self.any_running().ctl(*args, timeout=timeout)

    def rpc(self, mod: str, fun: str, args: str = "", timeout: float = 30) -> Any:
        """An RPC (:class:`ErlAgent`) on the first node whose AMQP port answers."""
        return self.agent.rpc(self.any_running().name, mod, fun, args, timeout=timeout)

    def running_members(self, via: ClusterNode | None = None) -> list[str]:
        node = via or self.any_running()
        return list(self.agent.rpc(node.name, "rabbit_nodes", "all_running", timeout=15))

    def stop_gracefully(self, node: ClusterNode, timeout_s: float = 90) -> None:
        """What ``rabbitmqctl stop`` does (``rabbit:stop_and_halt()``): the node leaves
        as in a rolling restart."""
        with contextlib.suppress(AssertionError):  # the VM halts before it answers
            self.agent.rpc(node.name, "rabbit", "stop_and_halt", timeout=timeout_s)
        if node.proc is not None:
            node.proc.wait(timeout=timeout_s)

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
        """Queue name → ``{"type", "leader", "members", "online", "consumers",
        "messages"}``, as ``rabbitmqctl list_queues`` gathers them (each running node
        reports the queues its record says it leads: a queue whose recorded leader is
        down is missing until a new leader has updated the record)."""
        rows = self.rpc(
            "rabbit_amqqueue",
            "collect_info_all",
            f'<<"{vhost}">>, [name, type, leader, members, online, consumers, messages]',
        )
        return {q["name"]: q for q in rows}

    def queue_count(self, vhost: str) -> int:
        """Queues of ``vhost``, whatever the state of their leader."""
        return int(self.rpc("rabbit_amqqueue", "count", f'<<"{vhost}">>'))

    def node_named(self, name: str) -> ClusterNode:
        return next(n for n in self.nodes if n.name == name)

    def leader_of(self, vhost: str, queue: str) -> ClusterNode:
        return self.node_named(str(self.queues(vhost)[queue]["leader"]))

    def consumers(self, vhost: str) -> dict[str, int]:
        return {name: int(q.get("consumers") or 0) for name, q in self.queues(vhost).items()}

    def add_vhost(self, vhost: str | None = None) -> str:
        vhost = vhost or f"cluster-{uuid.uuid4().hex[:8]}"
        self.rpc("rabbit_vhost", "add", f'<<"{vhost}">>, <<"faults">>', timeout=60)
        self.rpc(
            "rabbit_auth_backend_internal",
            "set_permissions",
            f'<<"guest">>, <<"{vhost}">>, <<".*">>, <<".*">>, <<".*">>, <<"faults">>',
        )
        return vhost

    # ------------------------------------------------------------ partition

    def partition(self, node: ClusterNode) -> None:
        """Blackhole every packet between ``node``'s distribution address and the
        others' (routing rules in the cluster's namespace): silent, like a cut link."""
        pref = _RULE_PREF
        for other in self.nodes:
            if other is node:
                continue
            for src, dst in ((node.dist_host, other.dist_host), (other.dist_host, node.dist_host)):
                self.netns.ip("rule", "add", "pref", str(pref), "from", src, "to", dst, "blackhole")
                pref += 1

    def heal(self) -> None:
        """Remove the partition's rules (none there: nothing to do)."""
        for pref in range(_RULE_PREF, _RULE_PREF + 2 * len(self.nodes)):
            self.netns.ip("rule", "del", "pref", str(pref), check=False)


#: Run beside the test process, its stdin a pipe from it: when the pipe closes (the
#: cluster stopped, or the test process gone, even by ``os._exit`` or SIGKILL), every
#: node still running is SIGKILLed, then every process left in the cluster's network
#: namespace (its epmd), and the namespace and veth pair deleted. argv: base
#: directory, namespace, host side of the veth pair.
_REAPER = r"""
import os, signal, subprocess, sys
from pathlib import Path
sys.stdin.buffer.read()
base, netns, host_if = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
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
# what is left in the namespace (its epmd), then the namespace and the veth pair
out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
for pid in out.stdout.split():
    try:
        os.kill(int(pid), signal.SIGKILL)
    except (OSError, ValueError):
        pass
subprocess.run(["ip", "netns", "del", netns], capture_output=True)
subprocess.run(["ip", "link", "del", host_if], capture_output=True)
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


# --------------------------------------------------------------------------- balancer


class BalancerProcess:
    """A :class:`TcpBalancer` in a process of its own: every service's broker traffic
    goes through it, and in the test process it would share one interpreter lock with
    the load the scenario generates."""

    def __init__(self, targets: list[tuple[str, int]]) -> None:
        self.targets = targets
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        spec = ",".join(f"{h}:{p}" for h, p in self.targets)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _BALANCER_MAIN, str(self.port), spec],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)},
        )
        deadline = time.monotonic() + 60
        while not answers("127.0.0.1", self.port):
            assert self._proc.poll() is None, "balancer exited"
            assert time.monotonic() < deadline, "balancer did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)


#: argv: port, ``host:port,host:port,...``; runs until terminated.
_BALANCER_MAIN = r"""
import sys, threading
from cluster_balancer import TcpBalancer
targets = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in sys.argv[2].split(",")]
TcpBalancer(targets, int(sys.argv[1])).start()
threading.Event().wait()
"""


# --------------------------------------------------------------------------- agent

#: The :class:`ErlAgent`'s loop: each stdin line is ``<seq> <erlang expressions>.``;
#: each is evaluated in a process of its own (a slow RPC holds up nothing else) and
#: answered by one line ``<seq> <json>``: ``{"ok": value}`` or ``{"error": "..."}``.
#: Values: binaries, atoms and printable lists as strings, ``true``/``false``/
#: ``undefined`` as JSON, tuples and lists as arrays, proplists with atom keys and
#: maps as objects, a ``#resource{}`` as its name, anything else as its printed form.
_AGENT_LOOP = r"""
Esc = fun(B) -> binary:replace(binary:replace(B, <<"\\">>, <<"\\\\">>, [global]),
                               <<"\"">>, <<"\\\"">>, [global]) end,
Str = fun(B) -> [$", Esc(B), $"] end,
Pair = fun(V) -> is_tuple(V) andalso tuple_size(V) =:= 2 andalso is_atom(element(1, V)) end,
J = fun J(true) -> "true"; J(false) -> "false"; J(undefined) -> "null";
        J(V) when is_atom(V) -> Str(atom_to_binary(V));
        J(V) when is_binary(V) -> Str(V);
        J(V) when is_integer(V) -> integer_to_list(V);
        J(V) when is_float(V) -> float_to_list(V, [short]);
        J({resource, _, _, Name}) -> J(Name);
        J(V) when is_map(V) ->
            [${, lists:join($,, [[J(iolist_to_binary(io_lib:format("~0p", [K]))), $:, J(X)]
                                 || {K, X} <- maps:to_list(V)]), $}];
        J([]) -> "[]";
        J(V) when is_list(V) ->
            case io_lib:printable_unicode_list(V) of
                true -> Str(unicode:characters_to_binary(V));
                false ->
                    case lists:all(Pair, V) of
                        true -> [${, lists:join($,, [[Str(atom_to_binary(K)), $:, J(X)]
                                                      || {K, X} <- V]), $}];
                        false -> [$[, lists:join($,, [J(X) || X <- V]), $]]
                    end
            end;
        J(V) when is_tuple(V) -> J(tuple_to_list(V));
        J(V) -> Str(iolist_to_binary(io_lib:format("~0p", [V])))
    end,
Eval = fun(Seq, Src) ->
    Reply = try
        {ok, Toks, _} = erl_scan:string(Src),
        {ok, Exprs} = erl_parse:parse_exprs(Toks),
        {value, V, _} = erl_eval:exprs(Exprs, []),
        ["{\"ok\":", J(V), "}"]
    catch C:R -> ["{\"error\":", Str(iolist_to_binary(io_lib:format("~0p:~0p", [C, R]))), "}"]
    end,
    io:put_chars([Seq, " ", Reply, "\n"])
end,
Loop = fun Loop() ->
    case io:get_line("") of
        eof -> halt(0);
        {error, _} -> halt(0);
        Line ->
            [Seq, Src] = string:split(string:trim(Line), " "),
            spawn(fun() -> Eval(Seq, Src) end),
            Loop()
    end
end,
Loop().
"""


class ErlAgent:
    """A hidden Erlang node in the cluster's namespace that runs the suite's queries
    and commands as RPCs on the nodes: a ``rabbitmqctl`` call starts an Erlang VM of its
    own (5 to 10 s each on a loaded 2-core machine), an RPC through this node takes
    milliseconds. Hidden, and on an address of its own: it joins no cluster and no
    partition rule names it."""

    def __init__(self, run: str, home: Path, epmd_port: int, netns: NetNs, ticktime: int) -> None:
        self.name = f"fccq-{run}@{AGENT_HOST}"
        self.ticktime = ticktime
        self.env = {**os.environ, "HOME": str(home), "ERL_EPMD_PORT": str(epmd_port)}
        self.netns = netns
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._replies: dict[int, queue.Queue[Any]] = {}
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        ip = _erl_ip(AGENT_HOST)
        loop = " ".join(line.strip() for line in _AGENT_LOOP.strip().splitlines())
        self._proc = subprocess.Popen(
            [
                *self.netns.prefix(),
                "erl",
                "-noshell",
                "-hidden",
                "-name",
                self.name,
                "-kernel",
                "net_ticktime",
                str(self.ticktime),  # the cluster's: its nodes drop a slower ticker
                "-kernel",
                "inet_dist_use_interface",
                ip,
                "-kernel",
                "inet_dist_connect_options",
                f"[{{ip,{ip}}}]",
                "-eval",
                loop,
            ],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, daemon=True, name="cluster-agent")
        self._reader.start()
        self.call("ok.", timeout=60)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self._proc.stdin is not None
                self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)  # it ends at the closed pipe's end of file
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            seq, _, body = line.partition(" ")
            with self._lock:
                box = self._replies.get(int(seq)) if seq.isdigit() else None
            if box is not None:
                box.put(body)

    def call(self, expr: str, timeout: float = 30) -> Any:
        """Evaluate Erlang expressions (ending in ``.``) on the agent; their value as
        JSON-ish Python, or AssertionError (an error, or no answer in ``timeout``)."""
        assert self._proc is not None, "agent not started"
        assert self._proc.stdin is not None
        seq = next(self._seq)
        box: queue.Queue[Any] = queue.Queue()
        with self._lock:
            self._replies[seq] = box
            self._proc.stdin.write(f"{seq} {' '.join(expr.split())}\n")
            self._proc.stdin.flush()
        try:
            body = box.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"agent: no answer in {timeout}s to {expr[:120]}") from None
        finally:
            with self._lock:
                self._replies.pop(seq, None)
        reply = json.loads(body)
        if "error" in reply:
            raise AssertionError(f"agent: {reply['error']} ({expr[:120]})")
        return reply["ok"]

    def rpc(self, node: str, mod: str, fun: str, args: str = "", timeout: float = 30) -> Any:
        """``rpc:call(node, mod, fun, [args])``; a ``{badrpc, _}`` raises AssertionError."""
        ms = int(timeout * 1000)
        return self.call(
            f"case rpc:call('{node}', {mod}, {fun}, [{args}], {ms}) of "
            f"{{badrpc, R}} -> error({{badrpc, R}}); V -> V end.",
            timeout=timeout + 5,
        )
