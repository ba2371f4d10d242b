"""Run a local Herald cluster as real OS processes: Herald nodes plus a webhook receiver.

Used by the cluster tests, `make run` and the benchmark. Each child runs in its own process
group, logs to a file of its own under the cluster's work directory, and is stopped by the PID
we started, never by name. Roles, environment and concurrency are per node, so any mix of
`herald scheduler|executor|recovery|all` can be assembled:

    with Cluster(env) as cluster:          # env: MONGODB_URI, REDIS_URL, HERALD_* (API.md)
        receiver = cluster.add_receiver()
        cluster.add_node("all")
        cluster.add_node("executor", concurrency=64, env={"HERALD_LOG_LEVEL": "debug"})
        cluster.start()                     # every node answers /readyz
        account = cluster.api("POST", "/accounts", {
            "platform": "webhook", "name": "demo", "config": {"url": receiver.hook_url},
            "credentials": {"secret": receiver.secret}})
        print(cluster.leader(), receiver.deliveries()["counts"])
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from tools.devservers import ROOT, free_port, wait_for_port

#: The `herald` console script of the interpreter running us (the project's virtualenv).
HERALD = Path(sys.executable).with_name("herald")
ROLES = ("scheduler", "executor", "recovery", "all")


class ClusterError(RuntimeError):
    """A child did not start, died, or the cluster could not answer."""


class ApiError(ClusterError):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> {status}: {body}")
        self.status = status
        self.body = body


#: Loopback only: a proxy from the environment (http_proxy) must not see these requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(
    method: str, url: str, body: Any = None, *, token: str | None = None, timeout: float = 10
) -> tuple[int, Any]:
    """One request with a JSON body; the status and the decoded JSON answer (None if empty)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


class _Child:
    """A child process in its own process group, with its output in a log file."""

    name = "child"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, args: list[str], env: dict[str, str] | None = None) -> None:
        if self.alive:
            raise ClusterError(f"{self.name} is already running (pid {self.pid})")
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start {' '.join(args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                args, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: signal.Signals) -> None:
        """Signal the child's process group. Only while poll() says it runs: an unreaped child's
        PID (= its process group id) cannot have been reused by another process."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the process group: no handover, no cleanup, like a crashed machine."""
        self.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def terminate(self, timeout: float = 20) -> int | None:
        """SIGTERM and wait for an orderly exit; raises TimeoutExpired if it does not come."""
        self.send_signal(signal.SIGTERM)
        return None if self.proc is None else self.proc.wait(timeout)

    def stop(self, timeout: float = 20) -> None:
        """Terminate, and kill whatever does not exit within `timeout`."""
        try:
            self.terminate(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _failure(self, message: str) -> ClusterError:
        return ClusterError(f"{message}\n--- last lines of {self.log_path}:\n{self.log_tail()}")


class Node(_Child):
    """One `herald <role>` process."""

    def __init__(
        self, role: str, node_id: str, env: dict[str, str], log_path: Path, *,
        http_port: int | None = None, concurrency: int | None = None,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        super().__init__(log_path)
        self.role = role
        self.node_id = node_id
        self.name = f"node {node_id} ({role})"
        self.env = {**env, "HERALD_NODE_ID": node_id}
        self.http_port = http_port or free_port()
        self.concurrency = concurrency

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def serves_api(self) -> bool:
        return self.role in ("scheduler", "all")

    def start(self) -> None:
        args = [str(HERALD), self.role, "--http-port", str(self.http_port), "--host", "127.0.0.1"]
        if self.concurrency is not None:
            args += ["--concurrency", str(self.concurrency)]
        # Only what the node is given: a variable of the caller's shell must not leak in.
        base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ") if k in os.environ}
        self._spawn(args, {**base, **self.env})

    def wait_ready(self, timeout: float = 30) -> None:
        """Poll /readyz until MongoDB and Redis are reachable from the node."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                code = None if self.proc is None else self.proc.returncode
                raise self._failure(f"{self.name} exited with code {code} before it was ready")
            with contextlib.suppress(OSError):
                status, _ = http_json("GET", self.url + "/readyz", timeout=2)
                if status == 200:
                    return
            time.sleep(0.1)
        raise self._failure(f"{self.name} was not ready within {timeout:.0f}s")


class Receiver(_Child):
    """The webhook receiver emulator (tests/emulators/webhook.py) in a process of its own, so
    deliveries are counted by a process no Herald node shares a fate with."""

    name = "webhook receiver"

    def __init__(
        self, secret: str, log_path: Path, state_file: Path, *, port: int | None = None,
        print_deliveries: bool = False,
    ) -> None:
        super().__init__(log_path)
        self.secret = secret
        self.state_file = state_file
        self.port = port or free_port()
        self.print_deliveries = print_deliveries

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hook_url(self) -> str:
        return self.url + "/hook"

    def start(self, timeout: float = 20) -> None:
        args = [sys.executable, "-m", "tests.emulators.webhook", "--port", str(self.port),
                "--secret", self.secret, "--state-file", str(self.state_file)]
        if self.print_deliveries:
            args.append("--print")
        self._spawn(args)
        assert self.proc is not None
        try:
            wait_for_port(self.port, self.proc, timeout, self.name)
        except RuntimeError as exc:
            raise self._failure(str(exc)) from None

    def deliveries(self) -> dict[str, Any]:
        """`{"deliveries": [...], "counts": {key: n}, "accepted": {key: answer}}`."""
        status, body = http_json("GET", self.url + "/_deliveries", timeout=30)
        if status != 200:
            raise ClusterError(f"{self.name}: GET /_deliveries -> {status}")
        return dict(body)

    def control(self, **script: Any) -> dict[str, Any]:
        """Script failures, rate limits and delays (see the emulator's docstring)."""
        status, body = http_json("POST", self.url + "/_control", script)
        if status != 200:
            raise ClusterError(f"{self.name}: POST /_control -> {status}: {body}")
        return dict(body)


class Cluster:
    """Herald nodes sharing one environment (one database, one cluster name), a receiver, and a
    work directory for logs. `stop()` (or leaving the `with` block) stops every child."""

    def __init__(self, env: dict[str, str], workdir: Path | None = None) -> None:
        self.env = dict(env)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="herald-cluster-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.token = env["HERALD_ADMIN_TOKEN"]
        self.nodes: list[Node] = []
        self.receiver: Receiver | None = None
        self._round_robin = itertools.count()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def add_node(
        self, role: str, *, node_id: str | None = None, concurrency: int | None = None,
        env: dict[str, str] | None = None, http_port: int | None = None,
    ) -> Node:
        """A node (not yet started); `env` adds to or overrides the cluster's environment."""
        node_id = node_id or f"{self.env.get('HERALD_CLUSTER_NAME', 'herald')}-{len(self.nodes)}"
        node = Node(role, node_id, {**self.env, **(env or {})}, self.workdir / f"{node_id}.log",
                    http_port=http_port, concurrency=concurrency)
        self.nodes.append(node)
        return node

    def add_receiver(
        self, secret: str = "receiver-secret", *, port: int | None = None,
        print_deliveries: bool = False,
    ) -> Receiver:
        self.receiver = Receiver(secret, self.workdir / "receiver.log",
                                 self.workdir / "deliveries.jsonl", port=port,
                                 print_deliveries=print_deliveries)
        return self.receiver

    def start(self, timeout: float = 60) -> None:
        """Start the receiver and every node not running yet, and wait until all are ready."""
        if self.receiver is not None and not self.receiver.alive:
            self.receiver.start()
        pending = [n for n in self.nodes if not n.alive]
        for node in pending:
            node.start()
        deadline = time.monotonic() + timeout
        for node in pending:
            node.wait_ready(max(1.0, deadline - time.monotonic()))

    def stop(self) -> None:
        """Stop every child we started, by PID: SIGTERM to all at once (so nodes drain in
        parallel), then SIGKILL whatever is still running. Never raises for one child."""
        children: list[_Child] = [*self.nodes, *([self.receiver] if self.receiver else [])]
        for child in children:
            with contextlib.suppress(OSError):
                child.send_signal(signal.SIGTERM)
        for child in children:
            with contextlib.suppress(OSError):
                child.stop(timeout=20)

    def api_nodes(self) -> list[Node]:
        """Running nodes that serve the admin API."""
        return [n for n in self.nodes if n.serves_api and n.alive]

    def api(
        self, method: str, path: str, json: Any = None, *, node: Node | None = None,
        timeout: float = 30,
    ) -> Any:
        """Call /api/v1 on `node`, or on the running scheduler nodes in turn; the decoded answer.
        Raises ApiError for any status outside 2xx."""
        if node is None:
            candidates = self.api_nodes()
            if not candidates:
                raise ClusterError("no running node serves the admin API")
            node = candidates[next(self._round_robin) % len(candidates)]
        status, body = http_json(method, f"{node.url}/api/v1{path}", json, token=self.token,
                                 timeout=timeout)
        if not 200 <= status < 300:
            raise ApiError(method, path, status, body)
        return body

    def leader(self) -> str | None:
        """The node id `GET /api/v1/cluster` names as leader, asking any running scheduler."""
        last: Exception | None = None
        for node in self.api_nodes():
            try:
                leader = self.api("GET", "/cluster", node=node, timeout=5)["leader"]
            except (OSError, ApiError) as exc:
                last = exc
                continue
            return None if leader is None else str(leader["node_id"])
        raise ClusterError(f"no scheduler node answered GET /api/v1/cluster: {last}")

    def wait_leader(
        self, timeout: float = 30, *, not_in: tuple[str, ...] = (), interval: float = 0.05
    ) -> str:
        """Poll until a leader is named that is not one of `not_in`; its node id."""
        deadline = time.monotonic() + timeout
        seen: str | None = None
        while time.monotonic() < deadline:
            with contextlib.suppress(ClusterError):
                seen = self.leader()
                if seen is not None and seen not in not_in:
                    return seen
            time.sleep(interval)
        raise ClusterError(f"no leader outside {not_in} within {timeout}s (last seen: {seen})")

    def log_tails(self, lines: int = 40) -> str:
        """The end of every child's log, for a failure report."""
        children: list[_Child] = [*self.nodes, *([self.receiver] if self.receiver else [])]
        return "\n".join(
            f"=== {c.name} (pid {c.pid}, {c.log_path}):\n{c.log_tail(lines)}" for c in children
        )
