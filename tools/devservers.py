"""Start and stop the development servers: redis-server and the MongoDB-compatible dev server.

Used by `make services` (H2 backend, data kept under .herald/) and by the test fixtures
(memory backend, throwaway), which may also ask for a three-master Redis Cluster. Every server
binds to 127.0.0.1 on a free port and is stopped by the PID we started, never by name.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MONGO_LAUNCHER = ROOT / "tools" / "mongo-dev-server.sh"
STATE_DIR = Path(os.environ.get("HERALD_STATE_DIR", ROOT / ".herald"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout:.0f}s")


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; run `make deps` (Debian package)")
    return binary


def start_redis(
    port: int | None = None, *, log: Path | None = None, extra: list[str] | None = None
) -> Server:
    port = port or free_port()
    args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--protected-mode", "yes", *(extra or [])]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port(port, proc, 10, "redis-server")
    return Server("redis", port, proc)


#: Redis Cluster's bus listens on the client port + 10000 (its fixed offset).
CLUSTER_BUS_OFFSET = 10_000
CLUSTER_READY_SECONDS = 30.0


def _free_cluster_port(taken: set[int]) -> int:
    """A free client port whose cluster bus port is free too."""
    while True:
        port = free_port()
        if port in taken or port + CLUSTER_BUS_OFFSET > 65_535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + CLUSTER_BUS_OFFSET))
            except OSError:
                continue
        return port


@dataclass
class RedisClusterServers:
    """A Redis Cluster of masters on loopback, its data (nodes.conf) in a temp dir of its own."""

    servers: list[Server]
    workdir: Path

    @property
    def url(self) -> str:
        """Herald's REDIS_URL for it: any one node; the client discovers the others."""
        return f"redis+cluster://127.0.0.1:{self.servers[0].port}"

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_redis_cluster(masters: int = 3, *, log_dir: Path | None = None) -> RedisClusterServers:
    """`masters` cluster-enabled redis-servers joined by `redis-cli --cluster create`, the
    slots spread evenly, no replicas; returns once every node reports `cluster_state:ok`."""
    workdir = Path(tempfile.mkdtemp(prefix="herald-redis-cluster-"))
    made = RedisClusterServers([], workdir)
    try:
        ports: set[int] = set()
        for _ in range(masters):
            port = _free_cluster_port(ports)
            ports.add(port)
            data = workdir / str(port)
            data.mkdir()
            made.servers.append(start_redis(port, log=log_dir / f"redis-{port}.log" if log_dir
                                            else None, extra=[
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000", "--dir", str(data)]))
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed; run `make deps` (Debian package)")
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in made.servers),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
        )
        _wait_cluster_ok(cli, made.servers)
    except BaseException:
        made.stop()
        raise
    return made


def _wait_cluster_ok(cli: str, servers: list[Server]) -> None:
    deadline = time.monotonic() + CLUSTER_READY_SECONDS
    pending = list(servers)
    while pending:
        info = subprocess.run([cli, "-p", str(pending[0].port), "cluster", "info"],
                              capture_output=True, text=True, timeout=10).stdout
        if "cluster_state:ok" in info:
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis cluster node {pending[0].port} not ok: {info.strip()}")
        time.sleep(0.1)


def start_mongo(
    port: int | None = None, *, backend: str = "memory", data: Path | None = None,
    log: Path | None = None,
) -> Server:
    port = port or free_port()
    args = ["bash", str(MONGO_LAUNCHER), "--port", str(port), "--backend", backend]
    if data is not None:
        args += ["--data", str(data)]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port(port, proc, 180, "mongo-dev-server")
    return Server("mongo", port, proc)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_state() -> dict[str, str]:
    env_file = STATE_DIR / "env"
    if not env_file.exists():
        return {}
    pairs = (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def services_up() -> int:
    """Start both servers unless the ones recorded in .herald/env still run."""
    state = _read_state()
    pids = [int(state[k]) for k in ("REDIS_PID", "MONGO_PID") if k in state]
    if len(pids) == 2 and all(_pid_alive(p) for p in pids):
        print(f"services already running (see {STATE_DIR / 'env'})")
        return 0
    services_down()
    STATE_DIR.mkdir(exist_ok=True)
    redis = start_redis(log=STATE_DIR / "redis.log")
    mongo = start_mongo(backend="h2", data=STATE_DIR / "herald.h2", log=STATE_DIR / "mongo.log")
    (STATE_DIR / "env").write_text(
        f"MONGODB_URI=mongodb://127.0.0.1:{mongo.port}/herald\n"
        f"REDIS_URL=redis://127.0.0.1:{redis.port}/0\n"
        f"REDIS_PID={redis.proc.pid}\nMONGO_PID={mongo.proc.pid}\n"
    )
    print(f"redis on 127.0.0.1:{redis.port}, mongo-dev-server on 127.0.0.1:{mongo.port}; "
          f"settings in {STATE_DIR / 'env'}")
    return 0


def services_down() -> int:
    """Stop exactly the process groups recorded in .herald/env."""
    state = _read_state()
    for key in ("REDIS_PID", "MONGO_PID"):
        if key not in state:
            continue
        pid = int(state[key])
        if not _pid_alive(pid):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    env_file = STATE_DIR / "env"
    if env_file.exists():
        env_file.unlink()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["up", "down"])
    args = parser.parse_args()
    return services_up() if args.action == "up" else services_down()


if __name__ == "__main__":
    sys.exit(main())
