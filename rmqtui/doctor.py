"""``rmqtui doctor``: check that a fleet's broker can really serve it, each check with a fix.

A broker can accept a ``$share/...`` subscription and then deliver nothing
(amqtt, NATS' MQTT gateway), so a fleet pointed at it looks healthy and handles
nothing.  The doctor proves delivery with probes instead of trusting SUBACKs:

- the config loads; the runtime and state directories are private;
- the broker is reachable with the configured credentials and TLS;
- ``$share`` delivers: N probes on a private topic arrive exactly once across
  two members of the fleet's group (a plain subscriber on the same topic tells
  "shares are broken" apart from "nothing arrives at all");
- share groups are consistent: two shared routes with the same filter in different
  groups would each get every message;
- no other running fleet of this user uses the same client-id prefix on the same
  broker (connecting with one of its ids would disconnect it, so the doctor only
  looks at fleets it can see: fleets on other hosts are not checked);
- an offline persistent session keeps more than Mosquitto's default
  ``max_queued_messages 1000`` (measured: 1100 probes queued for an offline member).

An embedded-broker config without a running fleet gets a temporary private Mosquitto.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

OK, WARN, FAIL, INFO = "ok", "warn", "FAIL", "info"
QUEUE_PROBES = 1100  # more than Mosquitto's default max_queued_messages (1000)


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: what was checked, the outcome and, unless ok, the fix."""

    name: str
    status: str  # OK, WARN, FAIL or INFO
    detail: str
    fix: str = ""

    def render(self) -> str:
        line = f"  {self.status:<5} {self.name}: {self.detail}"
        return line + (f"\n        fix: {self.fix}" if self.fix and self.status in (WARN, FAIL) else "")


def check_runtime_dirs(config_path: Path) -> list[Check]:
    """The per-config runtime and state directories exist, are ours and private."""
    from .engine.runtime import RuntimePathError, fleet_runtime_dir, fleet_state_dir

    out = []
    for name, resolve in (("runtime directory", fleet_runtime_dir), ("state directory", fleet_state_dir)):
        try:
            path = resolve(config_path)
        except RuntimePathError as exc:
            # its messages read "<problem>; <what to do>"
            problem, _, fix = str(exc).partition("; ")
            out.append(Check(name, FAIL, problem, fix or "see the problem above"))
        else:
            out.append(Check(name, OK, f"{path} is yours and private (0700)"))
    return out


def check_groups(config) -> Check:
    """Shared routes with the same topic filter must use one share group, or each group gets every message."""
    seen: dict[str, tuple[str, str]] = {}
    for route in config.routes:
        if not route.shared:
            continue
        group, flt = config.group_for(route), route.pattern.filter
        other = seen.setdefault(flt, (route.name, group))
        if other[1] != group:
            return Check("share group", FAIL,
                         f"routes {other[0]!r} (group {other[1]!r}) and {route.name!r} (group {group!r}) share "
                         f"the filter {flt!r}, so every message is handled once per group",
                         "give both routes the same `group` (or remove the per-route one)")
    groups = sorted({config.group_for(r) for r in config.routes if r.shared})
    env = os.environ.get("MQTT_GROUP_NAME")
    note = f" (MQTT_GROUP_NAME={env} overrides the file)" if env else ""
    return Check("share group", OK, f"{', '.join(groups) or 'no shared routes'}{note}")


def running_fleets() -> list[dict]:
    """State files of this user's running fleets (pid alive): ``{"pid", "host", "port", "config"}``."""
    from .engine.runtime import RuntimePathError, runtime_root

    roots = [Path(tempfile.gettempdir()) / f"rmqtui-{os.getuid()}"]
    try:
        roots.append(runtime_root())
    except RuntimePathError:
        pass
    found = {}
    for root in roots:
        for path in list(root.glob("*.json")) + list(root.glob("*/*.json")):
            try:
                state = json.loads(path.read_text())
                os.kill(int(state["pid"]), 0)
                found[(state["pid"], state["config"])] = state
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return list(found.values())


def check_prefix(config, host: str, port: int, fleets: list[dict]) -> Check:
    """No other running fleet of this user talks to the same broker with the same client-id prefix."""
    from .engine.config import ConfigError, client_prefix, load

    mine, me = client_prefix(config), str(config.path.resolve())
    for state in fleets:
        if state["config"] == me or (state.get("host"), state.get("port")) != (host, port):
            continue
        try:
            other = load(state["config"])
        except (ConfigError, OSError):
            continue
        if client_prefix(other) == mine:
            return Check("client ids", FAIL,
                         f"the running fleet of {state['config']} (pid {state['pid']}) uses the prefix {mine!r} "
                         f"on the same broker: the two fleets would disconnect each other's workers",
                         "set a different `[fleet] client_prefix` in one of the two files")
    return Check("client ids", OK, f"prefix {mine!r} is used by no other fleet of yours on this host "
                                   f"(fleets on other hosts cannot be seen without disconnecting them)")


def check_connect(access, nonce: str) -> Check:
    """Connect once with the configured credentials and TLS."""
    from .probe import Probe, ProbeError

    how = (f"MQTT {access.protocol}, {'user ' + repr(access.username) if access.username else 'anonymous'}, "
           f"{'TLS' if access.tls_ca or access.tls_cert else 'no TLS'}")
    try:
        Probe(access, f"rmqtui-doctor-{nonce}-c").connect().close()
    except ProbeError as exc:
        text = str(exc)
        if "authori" in text.lower() or "password" in text.lower():
            fix = "check [broker] username and that the variable named by password_env is set in this shell"
        elif "SSL" in text or "certificate" in text.lower():
            fix = "check [broker.tls] ca (the CA that signed the broker's certificate) and that host matches it"
        else:
            fix = "check [broker] host and port, and that the broker runs and listens there"
        return Check("broker", FAIL, f"{access.host}:{access.port} ({how}): {text}", fix)
    return Check("broker", OK, f"{access.host}:{access.port} accepts {how}")


def check_share(access, group: str, nonce: str, probes: int = 20, settle: float = 2.0) -> Check:
    """N probes on a private topic must arrive exactly once across two members of ``group``."""
    from .probe import Probe, ProbeError, wait_until

    topic = f"rmqtui/doctor/{nonce}/share"
    members, clients = [], []
    try:
        plain = Probe(access, f"rmqtui-doctor-{nonce}-p").connect()
        clients.append(plain)
        plain.subscribe(topic)
        for tag in "ab":
            m = Probe(access, f"rmqtui-doctor-{nonce}-{tag}").connect()
            clients.append(m)
            m.subscribe(f"$share/{group}/{topic}")
            members.append(m)
        payloads = [b"probe-%d" % i for i in range(probes)]
        acked = plain.publish(topic, payloads)
        wait_until(lambda: plain.count() >= probes and sum(m.count() for m in members) >= probes, settle)
        time.sleep(0.2)  # a late duplicate is the failure we look for: give it a moment to arrive
    except ProbeError as exc:
        return Check("$share", FAIL, f"$share/{group}/...: {exc}",
                     "use a broker with MQTT shared subscriptions (Mosquitto 1.6+, EMQX, VerneMQ, HiveMQ)")
    finally:
        for c in clients:
            c.close()
    got = [sum(m.received[p] for m in members) for p in payloads]
    twice = sum(1 for n in got if n > 1)
    missing = sum(1 for n in got if n == 0)
    fix = ("point [broker] at a broker that implements MQTT shared subscriptions (Mosquitto 1.6+, EMQX, "
           "VerneMQ, HiveMQ); this one accepts `$share/...` but does not deliver as a share group should")
    if acked < probes or plain.count() < probes:
        return Check("$share", FAIL, f"only {plain.count()} of {probes} probes reached a plain subscriber "
                                     f"({acked} acknowledged): the broker loses or refuses QoS 1 publishes",
                     "check the broker's ACL for rmqtui/doctor/# and its logs")
    if missing == probes:
        return Check("$share", FAIL, f"0 of {probes} probes reached the members of $share/{group}/ while a plain "
                                     f"subscriber got all {probes}: the broker swallows shared subscriptions", fix)
    if missing or twice:
        return Check("$share", FAIL, f"{probes - missing} of {probes} probes arrived, {twice} more than once "
                                     f"across two members of $share/{group}/", fix)
    split = "/".join(str(m.count()) for m in members)
    return Check("$share", OK, f"{probes} probes each arrived exactly once across two members (split {split})")


def check_dead_hosts(access, group: str, nonce: str) -> Check:
    """Hosts of the group whose presence says ``dead``: their sessions keep taking a share nobody serves."""
    from .engine.hosts import read_records

    try:
        states = {who: rec for (who, _), rec in read_records(access, group, "+", f"rmqtui-doctor-{nonce}-h",
                                                              "state").items() if isinstance(rec, dict)}
    except OSError as exc:
        return Check("dead hosts", WARN, f"could not read the hosts' presence records: {exc}", "")
    dead = sorted(h for h, s in states.items() if s.get("state") == "dead")
    if dead:
        return Check("dead hosts", WARN, f"host(s) {', '.join(dead)} of group {group!r} died without a clean stop; "
                                         f"their sessions keep taking a share of the messages that nobody handles",
                     f"on a live host: rmqtui ctl adopt {dead[0]} (or set [fleet] adopt_after)")
    return Check("dead hosts", OK, f"{len(states)} host(s) known in group {group!r}, none dead")


def wait_for_queue(count, want: int, *, quiet: float = 0.5, first: float = 3.0, sleep=time.sleep) -> int:
    """How many queued messages came back: wait until ``count()`` reaches ``want``, or stands still for
    ``quiet`` seconds once it began to move, or stays at 0 for ``first`` seconds.  The first message gets
    the longer wait because "none came back" is a FAIL, and a loaded machine is slow, not wrong."""
    last, waited = -1, 0.0
    while True:
        n = count()
        if n >= want or (n == last and (n > 0 or waited >= first)):
            return n
        last = n
        sleep(quiet)
        waited += quiet


def check_queue(access, nonce: str) -> Check:
    """An offline persistent session must keep more than Mosquitto's default of 1000 queued messages."""
    from .probe import Probe, ProbeError

    topic, cid = f"rmqtui/doctor/{nonce}/queue", f"rmqtui-doctor-{nonce}-q"
    try:
        member = Probe(access, cid, clean=False).connect()
        member.subscribe(topic)
        member.close()
        pub = Probe(access, f"rmqtui-doctor-{nonce}-w").connect()
        acked = pub.publish(topic, [b"%d" % i for i in range(QUEUE_PROBES)])
        pub.close()
        back = Probe(access, cid, clean=False).connect()
        got = wait_for_queue(back.count, QUEUE_PROBES)
        back.close()
        Probe(access, cid, clean=True).connect().close()  # end the probe's session on the broker
    except ProbeError as exc:
        return Check("queue limit", WARN, f"could not measure it: {exc}",
                     "make sure persistent sessions queue every message (Mosquitto: max_queued_messages 0)")
    if got >= QUEUE_PROBES:
        return Check("queue limit", OK, f"an offline session kept all {QUEUE_PROBES} probes")
    if got == 0:
        return Check("queue limit", FAIL,
                     f"an offline persistent session got none of {acked} probes back: every message sent while a "
                     f"worker restarts is lost", "use a broker that queues QoS 1 messages for persistent sessions "
                     "(Mosquitto with `max_queued_messages 0` and `persistence true`)")
    limit = " (Mosquitto's default max_queued_messages 1000)" if 990 <= got <= 1020 else ""
    return Check("queue limit", WARN,
                 f"an offline session got {got} of {acked} probes back{limit}: a worker that is down longer than "
                 f"that backlog loses messages",
                 "set `max_queued_messages 0` and `persistence true` in mosquitto.conf (or the broker's "
                 "equivalent), then restart the broker")


def run_checks(config, *, probes: int = 20) -> list[Check]:
    """Every check for ``config``; starts a temporary embedded broker when the config needs one."""
    from .engine.broker import BrokerError, EmbeddedBroker
    from .engine.broker_sys import broker_settings

    nonce = secrets.token_hex(4)
    checks = check_runtime_dirs(config.path) + [check_groups(config)]
    fleets = running_fleets()
    mine = next((f for f in fleets if f["config"] == str(config.path.resolve())), None)
    b, temp = config.broker, None
    host, port, unix_path = b.host, b.port, None
    if mine is not None:
        host, port, unix_path = mine["host"], int(mine["port"]), mine.get("unix_path") or None
        checks.append(Check("fleet", INFO, f"a fleet for this config runs (pid {mine['pid']}); checking its broker"))
    elif b.embedded:
        tmp = tempfile.mkdtemp(prefix="rmqtui-doctor-")
        temp = EmbeddedBroker(Path(tmp), host=b.host, port=b.port, binary=b.mosquitto)
        try:
            temp.start()
        except BrokerError as exc:
            return checks + [Check("embedded broker", FAIL, str(exc), "install Mosquitto (see above)")]
        host, port = temp.host, temp.port
        checks.append(Check("embedded broker", OK, f"a temporary private Mosquitto started on {host}:{port} "
                                                   f"with rmqtui's settings (persistence on, no queue cap)"))
    try:
        access = broker_settings(b, host, port, unix_path)
        checks.append(check_prefix(config, host, port, fleets))
        connect = check_connect(access, nonce)
        checks.append(connect)
        if connect.status == FAIL:
            return checks
        checks.append(check_share(access, config.fleet.group, nonce, probes))
        checks.append(check_queue(access, nonce))
        if temp is None and not b.embedded:
            checks.append(check_dead_hosts(access, config.fleet.group, nonce))
            checks.append(Check("persistence", INFO, "not visible over MQTT: make sure the broker saves sessions "
                                                     "(Mosquitto: `persistence true`), or a broker restart loses "
                                                     "every queued message"))
        return checks
    finally:
        if temp is not None:
            temp.stop()
            import shutil

            shutil.rmtree(temp.dir.parent, ignore_errors=True)


def cmd_doctor(argv: list[str]) -> int:
    """``rmqtui doctor [-c routemq.toml]``: print one line per check; exit 1 when any check failed."""
    ap = argparse.ArgumentParser(prog="rmqtui doctor",
                                 description="Check that the broker can serve this fleet: reachability, "
                                             "$share delivery, client ids, queue limits, private directories.")
    ap.add_argument("-c", "--config", default="routemq.toml", help="path to routemq.toml")
    ap.add_argument("--probes", type=int, default=20, help="$share probes to publish (default 20)")
    args = ap.parse_args(argv)
    if not 1 <= args.probes <= 10_000:
        print("rmqtui doctor: --probes must be between 1 and 10000", file=sys.stderr)
        return 2
    from .engine.config import ConfigError, load

    path = Path(args.config)
    try:
        if not path.exists():
            raise ConfigError(path, "the file does not exist",
                              "pass --config PATH, or run `rmqtui init` to write a starter routemq.toml")
        config = load(path)
    except ConfigError as exc:
        print(f"rmqtui doctor: {exc}", file=sys.stderr)
        return 2
    print(f"rmqtui doctor: {config.path}")
    checks = [Check("config", OK, f"{len(config.routes)} routes, {sum(r.workers for r in config.routes)} workers")]
    checks += run_checks(config, probes=args.probes)
    for c in checks:
        print(c.render(), flush=True)
    failed = [c for c in checks if c.status == FAIL]
    warned = [c for c in checks if c.status == WARN]
    print(f"{len(failed)} failed, {len(warned)} warnings" if failed or warned else "all checks passed")
    return 1 if failed else 0


def register(commands: dict) -> None:
    """Add ``doctor`` to the CLI's subcommand table (the one hook in ``cli.py``)."""
    commands["doctor"] = cmd_doctor
