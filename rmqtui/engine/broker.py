"""The embedded Mosquitto: a private broker started as a child of rmqtui.

It listens on loopback only, keeps no cap on queued messages (a member that is
down or slow must not lose its share), persists to a private runtime directory
and dies with its parent, also when the parent is killed with SIGKILL.
"""

from __future__ import annotations

import ctypes
import errno
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

INSTALL_HINT = "install it with: sudo apt-get install -y mosquitto"


class BrokerError(Exception):
    """The embedded broker could not be started; the message says why and what to do."""


def _death_signal_command() -> list[str]:
    """A prefix that makes the broker get SIGTERM when its parent dies: util-linux ``setpriv``.

    The kernel's PR_SET_PDEATHSIG must be set in the child, between fork and exec.  Doing it
    from ``preexec_fn`` runs Python (and loaded a C library) in a forked child of a threaded
    process, which Python documents as unsafe; ``setpriv`` sets it and then execs Mosquitto.
    """
    path = shutil.which("setpriv") or next((p for p in ("/usr/bin/setpriv", "/bin/setpriv") if os.access(p, os.X_OK)),
                                           None)
    return [path, "--pdeathsig", "TERM"] if path else []


def _prctl():
    """prctl(2) resolved in the parent, for systems without ``setpriv``; None off Linux."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = None if _death_signal_command() else _prctl()


def _set_parent_death_signal() -> None:
    """Fallback without ``setpriv``: one call of a function resolved before the fork, no loading."""
    _PRCTL(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` and we may bind it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # as Mosquitto binds its listener: connections of a previous broker in TIME_WAIT do not make the
        # port taken, so a restart of rmqtui keeps its port (clients are configured with it)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free right now on ``host``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def mqtt_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """Open a connection, send an MQTT 3.1.1 CONNECT and return True on a CONNACK."""
    client_id = b"rmqtui-probe-%d" % os.getpid()
    var_header = b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol name, level 4, clean session, keepalive 10
    payload = len(client_id).to_bytes(2, "big") + client_id
    body = var_header + payload
    packet = b"\x10" + bytes([len(body)]) + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(packet)
            reply = s.recv(4)
            if len(reply) >= 4 and reply[0] == 0x20 and reply[3] == 0:
                s.sendall(b"\xe0\x00")  # DISCONNECT
                return True
    except OSError:
        return False
    return False


class EmbeddedBroker:
    """A Mosquitto process owned by the fleet.

    ``port`` is the preferred port: used when free, otherwise a free one is
    picked and :attr:`port` tells which.  The same port is kept across
    restarts so workers reconnect to the same address.
    """

    def __init__(self, runtime_dir: Path, *, host: str = "127.0.0.1", port: int = 1883,
                 binary: str = "mosquitto") -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            host = "127.0.0.1"  # the embedded broker never listens beyond loopback
        self.host = "127.0.0.1" if host == "localhost" else host
        self.preferred_port = port
        self.port = port
        self.binary = binary
        self.dir = runtime_dir / "broker"
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self.moved_from: int | None = None  # the configured port, when it was taken

    @property
    def pid(self) -> int | None:
        """The broker's pid while it runs."""
        return self.process.pid if self.process and self.process.poll() is None else None

    @property
    def log_path(self) -> Path:
        return self.dir / "mosquitto.log"

    def running(self) -> bool:
        """True while the broker process is alive."""
        return self.process is not None and self.process.poll() is None

    def _resolve_binary(self) -> str:
        path = shutil.which(self.binary) or next(
            (p for p in (f"/usr/sbin/{self.binary}", f"/usr/local/sbin/{self.binary}") if os.access(p, os.X_OK)),
            None)
        if path is None:
            raise BrokerError(f"the embedded broker needs the '{self.binary}' binary, which was not found; "
                              f"{INSTALL_HINT} (or set [broker] embedded = false and point host/port "
                              f"at a broker you run)")
        return path

    def _write_config(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            "# written by rmqtui for its private broker; regenerated at every start\n"
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "# keep our own user: dropping privileges would clear the parent-death signal\n"
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
            "# no cap: a shared-subscription member that is down or slow keeps its share\n"
            "max_queued_messages 0\n"
            "max_queued_bytes 0\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 2\n"
            "set_tcp_nodelay true\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "connection_messages false\n"
        )
        return conf

    def start(self, timeout: float = 5.0) -> None:
        """Start the broker and return once it answers an MQTT CONNECT."""
        binary = self._resolve_binary()
        if self.restarts == 0 and not port_is_free(self.host, self.port):
            self.moved_from = self.port
            self.port = free_port(self.host)
        for attempt in range(3):
            conf = self._write_config()
            log = open(self.log_path, "ab")
            try:
                self.process = subprocess.Popen(
                    _death_signal_command() + [binary, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=log,
                    stderr=log, start_new_session=True,  # the terminal's Ctrl-C must not kill it before workers drain
                    preexec_fn=_set_parent_death_signal if _PRCTL is not None else None, close_fds=True)
            except OSError as exc:
                raise BrokerError(f"could not run {binary}: {exc}") from exc
            finally:
                log.close()
            if self._wait_ready(timeout):
                return
            tail = self.log_tail()
            self.stop()
            if "Address already in use" in tail and self.restarts == 0 and attempt < 2:
                self.moved_from = self.moved_from or self.port
                self.port = free_port(self.host)
                continue
            raise BrokerError(f"the embedded Mosquitto did not start on {self.host}:{self.port}: "
                              f"{tail.strip().splitlines()[-1] if tail.strip() else 'no output'} "
                              f"(log: {self.log_path})")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if mqtt_ping(self.host, self.port, timeout=0.5):
                return True
            time.sleep(0.02)
        return False

    def restart(self, timeout: float = 5.0) -> None:
        """Start a new broker process on the same address, after a crash."""
        self.restarts += 1
        self.stop()
        self.start(timeout)

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the broker's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL past ``timeout``."""
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def kill(self) -> None:
        """SIGKILL the broker (fault injection)."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGKILL)
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    raise
