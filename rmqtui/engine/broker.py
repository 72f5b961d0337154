"""The embedded Mosquitto: a private broker started as a child of rmqtui.

By default it listens only on a unix socket inside the fleet's 0700 runtime
directory, so only the user who started rmqtui (and root) can reach it. A
loopback TCP listener is opt-in and then accepts only the generated fleet
credentials. It keeps no cap on queued messages (a member that is down or slow
must not lose its share) but caps packet size, memory and connections,
persists to a private directory and dies with its parent, also when the parent
is killed with SIGKILL.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import hashlib
import os
import secrets
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
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


#: The user name of the generated credentials of a fleet's TCP listener.
FLEET_USER = "rmqtui-fleet"


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    """Limits written into the embedded broker's config (0 = Mosquitto's own "no limit")."""

    max_packet_size: int = 1 << 20  # bytes; larger PUBLISHes are refused by the broker
    memory_limit: int = 1 << 30  # bytes the broker may use before it refuses new messages
    max_connections: int = 1024  # per listener: bounds the file descriptors a flood can take
    session_expiry: str = "7d"  # persistent sessions nobody connects to are dropped after this


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` and we may bind it.

    The probe binds with SO_REUSEADDR, as Mosquitto does, so sockets of a previous
    broker still in TIME_WAIT do not make the port look taken after a quick restart.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
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


def password_hash(password: str, *, salt: bytes | None = None, iterations: int = 101) -> str:
    """A Mosquitto 2.x password-file hash (``$7$``: PBKDF2-HMAC-SHA512), as ``mosquitto_passwd`` writes it."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _connect_packet(client_id: bytes, username: str = "", password: str = "") -> bytes:
    flags = 0x02  # clean session
    payload = len(client_id).to_bytes(2, "big") + client_id
    for flag, text in ((0x80, username), (0x40, password)):
        if text:
            flags |= flag
            raw = text.encode()
            payload += len(raw).to_bytes(2, "big") + raw
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + b"\x00\x0a" + payload  # level 4, keepalive 10
    length, encoded = len(body), b""
    while True:  # MQTT variable-length integer
        length, digit = divmod(length, 128)
        encoded += bytes([digit | (0x80 if length else 0)])
        if not length:
            break
    return b"\x10" + encoded + body


def mqtt_ping(host: str, port: int, timeout: float = 1.0, *, unix_path: str | os.PathLike | None = None,
              username: str = "", password: str = "") -> bool:
    """Open a connection (TCP, or the unix socket ``unix_path``), send an MQTT 3.1.1 CONNECT, True on a CONNACK."""
    packet = _connect_packet(b"rmqtui-probe-%d" % os.getpid(), username, password)
    try:
        if unix_path is not None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(os.fspath(unix_path))
            except OSError:
                s.close()
                raise
        else:
            s = socket.create_connection((host, port), timeout=timeout)
        with s:
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
                 binary: str = "mosquitto", unix_socket: Path | None = None, listen_tcp: bool = True,
                 authenticate_tcp: bool = False, limits: BrokerLimits = BrokerLimits(),
                 move_if_taken: bool = True) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            host = "127.0.0.1"  # the embedded broker never listens beyond loopback
        self.host = "127.0.0.1" if host == "localhost" else host
        self.preferred_port = port
        self.port = port if listen_tcp else None
        self.binary = binary
        self.dir = runtime_dir / "broker"
        self.unix_socket = Path(unix_socket) if unix_socket is not None else None
        self.listen_tcp = listen_tcp or unix_socket is None
        self.limits = limits
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self.moved_from: int | None = None  # the configured port, when it was taken
        # False: a taken port is an error (a TCP listener the user asked for must be where they said)
        self.move_if_taken = move_if_taken
        # a TCP listener next to the private socket is for the user's own tools: it admits only the
        # fleet's generated credentials, so another local user gains nothing by reaching (or grabbing) it
        self.username = FLEET_USER if authenticate_tcp and self.listen_tcp else ""
        self.password = secrets.token_urlsafe(24) if self.username else ""

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
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lim = self.limits
        lines = [
            "# written by rmqtui for its private broker; regenerated at every start",
            "per_listener_settings true",
            "# keep our own user: dropping privileges would clear the parent-death signal",
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            "# no cap on queued messages: a shared-subscription member that is down or slow keeps its share",
            "max_queued_messages 0",
            "max_queued_bytes 0",
            f"max_packet_size {lim.max_packet_size}",
            f"memory_limit {lim.memory_limit}",
            f"persistent_client_expiration {lim.session_expiry}",
            "persistence true",
            f"persistence_location {self.dir}/",
            "autosave_interval 2",
            "set_tcp_nodelay true",
            "# $SYS every 2 s: the store count feeds the autoscaler's backlog trend and /metrics",
            "sys_interval 2",
            f"log_dest file {self.log_path}",
            "log_type error", "log_type warning", "log_type notice",
            "connection_messages false",
        ]
        if self.unix_socket is not None:
            # reachable only through the 0700 runtime directory that holds it
            lines += [f"listener 0 {self.unix_socket}", "allow_anonymous true",
                      f"max_connections {lim.max_connections}"]
        if self.listen_tcp:
            lines += [f"listener {self.port} {self.host}", f"max_connections {lim.max_connections}"]
            if self.username:
                passwd, acl = self.dir / "passwd", self.dir / "acl"
                _write_0600(passwd, f"{self.username}:{password_hash(self.password)}\n")
                _write_0600(acl, f"user {self.username}\ntopic readwrite #\n")
                lines += ["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"]
            else:
                lines += ["allow_anonymous true"]
        conf = self.dir / "mosquitto.conf"
        _write_0600(conf, "\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 5.0) -> None:
        """Start the broker and return once it answers an MQTT CONNECT."""
        binary = self._resolve_binary()
        if self.unix_socket is not None:
            try:
                self.unix_socket.unlink()  # a stale socket of a killed broker
            except FileNotFoundError:
                pass
        if self.listen_tcp and self.restarts == 0 and not port_is_free(self.host, self.port):
            if not self.move_if_taken:
                raise BrokerError(f"port {self.port} on {self.host} is taken by another process, so the embedded "
                                  f"broker cannot open its TCP listener there; choose a free port with "
                                  f"[broker] port = N (or --port N), or set listen_tcp = false")
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
            if ("Address already in use" in tail and self.listen_tcp and self.restarts == 0 and attempt < 2
                    and self.move_if_taken):
                self.moved_from = self.moved_from or self.port
                self.port = free_port(self.host)
                continue
            raise BrokerError(f"the embedded Mosquitto did not start on {self.address}: "
                              f"{tail.strip().splitlines()[-1] if tail.strip() else 'no output'} "
                              f"(log: {self.log_path})")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            if self.ping(timeout=0.5):
                return True
            time.sleep(0.02)
        return False

    @property
    def address(self) -> str:
        """Where clients reach the broker, for messages: the socket path, else host:port."""
        return str(self.unix_socket) if self.unix_socket is not None else f"{self.host}:{self.port}"

    def ping(self, timeout: float = 0.5) -> bool:
        """True when the broker answers a CONNECT; through the private socket when there is one,
        so a process that grabbed the TCP port can never pass for our broker."""
        if self.unix_socket is not None:
            return mqtt_ping(self.host, 0, timeout, unix_path=self.unix_socket)
        return mqtt_ping(self.host, self.port, timeout, username=self.username, password=self.password)

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


def _write_0600(path: Path, text: str) -> None:
    """Write a file only our user can read; an existing symlink is replaced, never followed."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
