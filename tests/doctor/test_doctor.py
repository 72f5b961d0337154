"""``rmqtui doctor`` against real brokers: Mosquitto passes, amqtt (swallows $share) fails with the fix."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from rmqtui.doctor import (FAIL, OK, Check, check_groups, check_prefix, check_runtime_dirs, cmd_doctor,
                           wait_for_queue)
from rmqtui.engine.config import load

HANDLER = "def handle(msg):\n    pass\n"


def write_config(root: Path, port: int, *, prefix: str = "", routes: str = "", broker: str = "") -> Path:
    (root / "hd").mkdir(exist_ok=True)
    (root / "hd" / "__init__.py").write_text("")
    (root / "hd" / "h.py").write_text(HANDLER)
    routes = routes or '[[routes]]\nname = "a"\ntopic = "a/{x}"\nhandler = "hd.h:handle"\n'
    fleet = f'group = "g"\nhandlers = "hd"\n' + (f'client_prefix = "{prefix}"\n' if prefix else "")
    path = root / "routemq.toml"
    path.write_text(f'[broker]\nembedded = false\nhost = "127.0.0.1"\nport = {port}\n{broker}\n[fleet]\n{fleet}\n{routes}')
    return path


def lines(out: str, name: str) -> str:
    """The report line of check ``name`` plus its fix line."""
    rows = out.splitlines()
    for i, row in enumerate(rows):
        if row[8:].startswith(name + ":"):
            return "\n".join(rows[i:i + 2])
    raise AssertionError(f"no {name!r} line in:\n{out}")


def test_passes_on_mosquitto_and_warns_on_its_default_queue_limit(private_dirs, start_broker, capsys):
    port = start_broker("mosquitto")  # Mosquitto's defaults: max_queued_messages 1000
    code = cmd_doctor(["-c", str(write_config(private_dirs, port))])
    out = capsys.readouterr().out
    assert code == 0, f"doctor should pass on Mosquitto:\n{out}"
    assert lines(out, "$share").startswith("  ok    $share: 20 probes each arrived exactly once"), out
    queue = lines(out, "queue limit")
    assert "warn" in queue and "max_queued_messages 1000" in queue and "fix: set `max_queued_messages 0`" in queue, \
        f"the default queue limit should be a warning with its fix:\n{out}"
    assert "FAIL" not in out, f"no check should fail:\n{out}"


def test_all_ok_on_a_broker_set_up_for_at_least_once(private_dirs, start_broker, capsys):
    port = start_broker("mosquitto", "max_queued_messages 0\n")
    code = cmd_doctor(["-c", str(write_config(private_dirs, port)), "--probes", "50"])
    out = capsys.readouterr().out
    assert code == 0 and "all checks passed" in out, f"every check should pass:\n{out}"
    assert "50 probes each arrived exactly once" in out, out


def test_credentials_and_v5(private_dirs, start_broker, capsys, monkeypatch):
    pw = private_dirs / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pw), "doc", "s3cret"], check=True, capture_output=True)
    port = start_broker("mosquitto", f"allow_anonymous false\npassword_file {pw}\nmax_queued_messages 0\n")
    path = write_config(private_dirs, port, broker='protocol = "v5"\nusername = "doc"\npassword_env = "DOC_PW"\n')
    monkeypatch.setenv("DOC_PW", "wrong")
    code = cmd_doctor(["-c", str(path)])
    out = capsys.readouterr().out
    broker = lines(out, "broker")
    assert code == 1 and "FAIL" in broker and "password_env" in broker, f"a wrong password fails with the fix:\n{out}"
    monkeypatch.setenv("DOC_PW", "s3cret")
    code = cmd_doctor(["-c", str(path)])
    out = capsys.readouterr().out
    assert code == 0 and "accepts MQTT v5, user 'doc'" in out and "all checks passed" in out, out


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_tls_with_the_right_ca_passes_and_a_wrong_one_fails_with_the_fix(private_dirs, start_broker, capsys):
    cert, key = self_signed(private_dirs, "server")
    other, _ = self_signed(private_dirs, "other")
    port = start_broker("mosquitto", f"cafile {cert}\ncertfile {cert}\nkeyfile {key}\nmax_queued_messages 0\n")
    code = cmd_doctor(["-c", str(write_config(private_dirs, port, broker=f'[broker.tls]\nca = "{cert}"\n'))])
    out = capsys.readouterr().out
    assert code == 0 and "accepts MQTT v3.1.1, anonymous, TLS" in out, f"TLS with the right CA:\n{out}"
    code = cmd_doctor(["-c", str(write_config(private_dirs, port, broker=f'[broker.tls]\nca = "{other}"\n'))])
    out = capsys.readouterr().out
    broker = lines(out, "broker")
    assert code == 1 and "FAIL" in broker and "fix: check [broker.tls] ca" in broker, f"a wrong CA:\n{out}"


def test_fails_with_the_fix_on_a_broker_that_swallows_share(private_dirs, start_broker, capsys):
    port = start_broker("amqtt")
    code = cmd_doctor(["-c", str(write_config(private_dirs, port))])
    out = capsys.readouterr().out
    assert code == 1, f"doctor must fail on amqtt:\n{out}"
    share = lines(out, "$share")
    assert "FAIL" in share and "0 of 20 probes" in share and "swallows shared subscriptions" in share, out
    assert "fix: point [broker] at a broker that implements MQTT shared subscriptions" in share, out


def test_unreachable_broker_fails_with_the_fix(private_dirs, capsys):
    from rmqtui.engine.broker import free_port

    code = cmd_doctor(["-c", str(write_config(private_dirs, free_port()))])
    out = capsys.readouterr().out
    broker = lines(out, "broker")
    assert code == 1 and "FAIL" in broker and "fix: check [broker] host and port" in broker, out
    assert "$share" not in out, f"no probe should run without a broker:\n{out}"


def test_missing_config_is_a_clear_error(tmp_path, capsys):
    code = cmd_doctor(["-c", str(tmp_path / "nope.toml")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "Traceback" not in err, err


def test_same_prefix_on_the_same_broker_fails(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mine = load(write_config(tmp_path / "a", 1884, prefix="p1"))
    other = write_config(tmp_path / "b", 1884, prefix="p1")
    state = {"pid": os.getpid(), "host": "127.0.0.1", "port": 1884, "config": str(other.resolve())}
    check = check_prefix(mine, "127.0.0.1", 1884, [state])
    assert check.status == FAIL and "client_prefix" in check.fix, f"{check}"
    assert check_prefix(mine, "127.0.0.1", 1885, [state]).status == OK, "another broker is no clash"


def test_routes_with_one_filter_in_two_groups_fail(tmp_path):
    routes = ('[[routes]]\nname = "a"\ntopic = "s/{x}"\nhandler = "hd.h:handle"\n\n'
              '[[routes]]\nname = "b"\ntopic = "s/{y}"\nhandler = "hd.h:handle"\ngroup = "other"\n')
    check = check_groups(load(write_config(tmp_path, 1884, routes=routes)))
    assert check.status == FAIL and "same `group`" in check.fix, f"{check}"


def test_loose_runtime_directory_fails_with_chmod(tmp_path, monkeypatch):
    (tmp_path / "xdg").mkdir(mode=0o700)
    loose = tmp_path / "xdg" / "rmqtui"  # a directory rmqtui names itself must be private
    loose.mkdir()
    loose.chmod(0o775)  # group-writable: someone else may have put files in it
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    checks = check_runtime_dirs(tmp_path / "routemq.toml")
    runtime = next(c for c in checks if c.name == "runtime directory")
    assert runtime.status == FAIL and "chmod 700" in runtime.fix, f"{runtime}"
    assert isinstance(runtime, Check) and "fix: chmod 700" in runtime.render().replace("run: ", ""), runtime.render()


def test_cli_registers_doctor(tmp_path, capsys):
    from rmqtui.cli import main

    code = main(["doctor", "-c", str(tmp_path / "missing.toml")])
    assert code == 2 and "rmqtui doctor:" in capsys.readouterr().err, "`rmqtui doctor` reaches cmd_doctor"


def _queue_after(arrivals: list[tuple[float, int]]):
    """A count that follows ``arrivals`` ((seconds, total) steps) on a clock that only sleep() moves."""
    clock = [0.0]

    def count() -> int:
        return max([n for at, n in arrivals if at <= clock[0]], default=0)

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    return count, sleep, clock


def test_the_queue_check_waits_for_a_slow_first_message_but_not_forever():
    """A loaded machine may take a second or two to start the backlog: that is not "none came back"."""
    count, sleep, clock = _queue_after([(1.6, 400), (2.1, 1100)])
    assert wait_for_queue(count, 1100, sleep=sleep) == 1100, "a slow start was taken for an empty queue"
    count, sleep, clock = _queue_after([(0.6, 1000)])
    assert wait_for_queue(count, 1100, sleep=sleep) == 1000, "a queue capped at 1000 is reported as such"
    assert clock[0] <= 1.5, f"a stalled queue was waited on for {clock[0]} s"
    count, sleep, clock = _queue_after([])
    assert wait_for_queue(count, 1100, sleep=sleep) == 0 and 3.0 <= clock[0] <= 4.0, "an empty queue ends in ~3 s"
