"""Real Redis processes on loopback for the relay's tests and benches: one server, or a primary
with a replica watched by three Sentinels. Each is started on a free port in a directory of
its own and stopped by its PID. Needs Debian's redis-server (and redis-sentinel for a group)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import redis

from tests.factories import free_port, stop_process, wait_until

SERVICE = "relay"


def redis_binary(name: str = "redis-server") -> str | None:
    return shutil.which(name)


def start_redis_server(directory: Path, port: int | None = None, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    """A redis-server with every write fsynced (appendfsync always), as the README asks of operators."""
    binary = redis_binary()
    assert binary is not None, "redis-server is not installed"
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", "",
                             "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no",
                             "--protected-mode", "yes", "--logfile", str(directory / "redis.log"), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def answers() -> bool:
        if proc.poll() is not None:
            log = (directory / "redis.log").read_text(errors="replace")[-500:]
            raise RuntimeError(f"redis-server exited: {log}")
        return pings(port)
    wait_until(answers, 15, f"redis-server on port {port} answering PING")
    return proc, port


def pings(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.2, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def replicas_in_sync(port: int) -> int:
    """Replicas of the Redis on `port` that are online (past their first sync)."""
    try:
        info = redis.Redis(port=port, socket_timeout=0.5).info("replication")
    except redis.RedisError:
        return 0
    return sum(1 for key, value in info.items()
               if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online")


class ReplicationLink(threading.Thread):
    """The primary's address as everyone else knows it: a TCP relay that can hold back what the
    primary sends its replica (a replica falling behind, as across a slow or broken link).
    Freezing the replica would not do (the kernel keeps receiving for it), and a link for the
    replica alone neither: the Sentinels point a replica back at the primary's own address."""

    def __init__(self, primary_port: int) -> None:
        super().__init__(daemon=True)
        self.primary_port = primary_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._open: list[threading.Event] = []  # each open connection's "held"

    def hold(self) -> None:
        """The connections open now pass nothing more from the primary to a replica. Those made
        later (a restarted primary, a replica after a failover) pass everything: the Sentinels may
        well fail over back to a restarted primary, through this same address."""
        for held in self._open:
            held.set()

    def run(self) -> None:
        while True:
            try:
                replica, _ = self.listener.accept()
            except OSError:
                return
            try:
                primary = socket.create_connection(("127.0.0.1", self.primary_port), timeout=5)
            except OSError:
                replica.close()
                continue
            primary.settimeout(None)
            replicating = threading.Event()  # this connection is a replica's (it asked for PSYNC)
            held = threading.Event()
            self._open.append(held)
            threading.Thread(target=self._pump, args=(replica, primary, replicating, held, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(primary, replica, replicating, held, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, replicating: threading.Event, held: threading.Event,
              from_primary: bool) -> None:
        try:
            while data := source.recv(65536):
                if not from_primary and (b"\r\nPSYNC\r\n" in data or b"\r\nREPLCONF\r\n" in data):
                    replicating.set()
                if from_primary and replicating.is_set() and held.is_set():
                    continue  # never reaches the replica
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


class SentinelGroup:
    """A primary, one replica and three Sentinels (quorum 2) that fail over a second after the
    primary stops answering. The replica reaches its primary through a ReplicationLink."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[subprocess.Popen[bytes]] = []
        self.primary, a_port = start_redis_server(work / "a")
        self.link = ReplicationLink(a_port)
        self.link.start()
        self.primary_port = self.link.port  # as the Sentinels, the replica and the relay know it
        self.ports = {"a": self.primary_port}
        self.own_ports = {"a": a_port}
        replica, replica_port = start_redis_server(work / "b", None, "--replicaof", "127.0.0.1", str(self.link.port))
        self.ports["b"] = self.own_ports["b"] = replica_port
        self.servers = {"a": self.primary, "b": replica}
        self.sentinel_ports = [free_port() for _ in range(3)]
        for index, port in enumerate(self.sentinel_ports):
            self.procs.append(self._start_sentinel(index, port))
        wait_until(lambda: replicas_in_sync(self.primary_port) >= 1, 20, "the replica in sync")
        wait_until(self._sentinels_agree, 20, "three Sentinels watching the primary and each other")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _start_sentinel(self, index: int, port: int) -> subprocess.Popen[bytes]:
        directory = self.work / f"sentinel{index}"
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "sentinel.conf"  # Sentinel rewrites it as the group changes
        config.write_text(f"port {port}\nbind 127.0.0.1\ndir {directory}\nlogfile {directory / 'sentinel.log'}\n"
                          f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                          f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                          f"sentinel failover-timeout {SERVICE} 5000\n"
                          f"sentinel parallel-syncs {SERVICE} 1\n")
        binary = redis_binary("redis-sentinel") or redis_binary()
        argv = [binary, str(config)] + ([] if binary.endswith("redis-sentinel") else ["--sentinel"])
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            try:
                master = redis.Redis(port=port, socket_timeout=0.5).sentinel_master(SERVICE)
            except redis.RedisError:
                return False
            if master.get("num-other-sentinels", 0) < 2 or master.get("num-slaves", 0) < 1:
                return False
        return True

    def primary_name(self) -> str:
        """Which server ("a" or "b") the Sentinels name primary now."""
        for port in self.sentinel_ports:
            try:
                _, primary_port = redis.Redis(port=port, socket_timeout=0.5).sentinel_get_master_addr_by_name(SERVICE)
            except (redis.RedisError, TypeError):
                continue
            return next(name for name, known in self.ports.items() if known == int(primary_port))
        raise AssertionError("no Sentinel answers")

    def kill(self, name: str) -> None:
        self.servers[name].send_signal(signal.SIGKILL)
        self.servers[name].wait(timeout=10)

    def hold_replication(self) -> None:
        """From now on the replica gets nothing more from the first primary."""
        self.link.hold()

    def restart(self, name: str) -> None:
        """Back on its port with its own data, as a service manager restarts it; the Sentinels
        make it a replica of whoever is primary now (about 15 s later)."""
        self.servers[name], _ = start_redis_server(self.work / name, self.own_ports[name])

    def wait_for_failover(self, away_from: str, timeout: float = 30.0) -> float:
        started = time.monotonic()
        wait_until(lambda: self.primary_name() != away_from, timeout, f"the Sentinels promoting a replica over {away_from}")
        return time.monotonic() - started

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.ports[self.primary_name()], socket_timeout=5)

    def wait_for_replica(self, timeout: float = 30.0) -> float:
        """Seconds until the primary has a replica in sync again."""
        started = time.monotonic()
        wait_until(lambda: replicas_in_sync(self.ports[self.primary_name()]) >= 1, timeout, "a replica in sync again")
        return time.monotonic() - started

    def stop(self) -> None:
        for proc in [*self.procs, *self.servers.values()]:
            stop_process(proc)
        self.link.close()

