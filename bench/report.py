"""What a benchmark run records and how it is shown: the machine, the commit, and one row per figure.

Every target, reference and figure is declared once in :data:`SPECS`.  :func:`build_rows`
turns a run's raw figure data into rows (value, unit, verdict); the text report
(bench/last-run.txt) and the README table (bench/readme_table.py) are both rendered from
those rows, so they cannot disagree with the JSON.  Verdicts: PASS / MISS for targets,
REFERENCE for comparisons that are not targets, INFO for plain figures, ERROR when the
figure failed (with its message), NOT RUN when the run left it out (with the reason).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil

REPO = Path(__file__).resolve().parent.parent
#: files a run writes itself: changes to them do not make the measured tree "dirty"
OUTPUTS = ("bench/last-run.json", "bench/last-run.txt", "README.md")
SCHEMA = 2


# --------------------------------------------------------------------------- where the run happened


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def git_info() -> dict:
    """The commit measured and whether the work tree differed from it (outputs of the run excluded)."""
    status = _run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]).splitlines()
    changed = sorted(line[3:] for line in status if line[3:] not in OUTPUTS)
    return {"commit": _run(["git", "-C", str(REPO), "rev-parse", "HEAD"]).strip(),
            "commit_short": _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).strip(),
            "dirty": bool(changed), "dirty_files": changed}


def machine_info() -> dict:
    """Cores, CPU model, memory and the versions of what the figures depend on."""
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    except OSError:
        pass
    try:
        import paho.mqtt

        paho_version = paho.mqtt.__version__
    except ImportError:
        paho_version = None
    mosq = re.search(r"mosquitto version (\S+)", _run(["mosquitto", "-h"]))
    return {"cores": os.cpu_count(), "cpu_model": model or platform.processor(),
            "memory_bytes": psutil.virtual_memory().total, "python": platform.python_version(),
            "paho_mqtt": paho_version, "mosquitto": mosq.group(1) if mosq else None,
            "platform": platform.platform(), "host": platform.node()}


class ContentionMonitor:
    """Samples how much CPU processes outside this benchmark's process tree use during the run.

    Every ``period`` seconds: the machine's busy CPU time minus the CPU time of this process
    and its descendants (children reaped meanwhile show up in their parent's children times).
    The 2-core machine is shared; this says how shared it was.
    """

    def __init__(self, period: float = 5.0) -> None:
        self.period = period
        self.samples: list[float] = []  # cores used by other processes, per period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-contention", daemon=True)

    @staticmethod
    def _ours() -> float:
        me = psutil.Process()
        total = 0.0
        for p in [me, *me.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        return total

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def _loop(self) -> None:
        busy0, ours0, t0 = self._busy(), self._ours(), time.monotonic()
        while not self._stop.wait(self.period):
            busy1, ours1, t1 = self._busy(), self._ours(), time.monotonic()
            self.samples.append(max(0.0, ((busy1 - busy0) - (ours1 - ours0)) / (t1 - t0)))
            busy0, ours0, t0 = busy1, ours1, t1

    def start(self) -> None:
        self._thread.start()

    def result(self) -> dict:
        self._stop.set()
        s = sorted(self.samples)
        med = s[len(s) // 2] if s else None
        cores = os.cpu_count() or 1
        shared = med is not None and med > 0.25
        return {"other_cores_median": med, "other_cores_max": s[-1] if s else None, "samples": len(s),
                "period_s": self.period, "shared": shared,
                "note": (f"shared machine: other processes used a median {med:.2f} of {cores} cores during the run"
                         if shared else "no significant load from other processes seen")}


# --------------------------------------------------------------------------- rows


class FigureError(Exception):
    """A value could not be read from a figure's data (the figure, or part of it, failed)."""


def pick(data, *path):
    """``data[path[0]][path[1]]...``; a dict with an ``error`` on the way raises it as a FigureError."""
    cur = data
    for key in path:
        if isinstance(cur, dict) and "error" in cur:
            raise FigureError(str(cur["error"]))
        if not isinstance(cur, dict) or key not in cur:
            raise FigureError(f"no {'/'.join(map(str, path))} in the figure's data")
        cur = cur[key]
    if isinstance(cur, dict) and "error" in cur:
        raise FigureError(str(cur["error"]))
    return cur


@dataclass(frozen=True)
class Spec:
    """One row of the report: where its value comes from, its unit, and its target if it has one."""

    id: str
    figure: str
    label: str
    unit: str
    get: Callable[[dict], float]
    kind: str = "info"  # "target", "reference" or "info"
    op: str = ""  # ">=", "<=" or "==" for targets
    limit: float | None = None
    detail: Callable[[dict], str] | None = None
    full_only: bool = False

    @property
    def target(self) -> str:
        return f"{self.op} {format_value(self.limit, self.unit)}" if self.kind == "target" else ""


UNITS = {"x": "{:.2f}", "msg/s": "{:,.0f} msg/s", "ms": "{:.1f} ms", "s": "{:.1f} s", "MB": "{:.1f} MB",
         "%core": "{:.2f} % of a core", "%": "{:.1f} %", "count": "{:,.0f}", "us": "{:.2f} µs", "/s": "{:.2f}/s"}


def format_value(v, unit: str) -> str:
    return "-" if v is None else UNITS.get(unit, "{} " + unit).format(v)


PROTOCOLS = {"v5": "MQTT 5", "v3.1.1": "MQTT 3.1.1"}


def _cases() -> list[tuple[str, str, int]]:
    return [(f"{p}-qos{q}", PROTOCOLS[p], q) for p in ("v3.1.1", "v5") for q in (0, 1)]


def _specs() -> list[Spec]:
    s: list[Spec] = []
    for key, proto, qos in _cases():
        s.append(Spec(f"throughput.{key}", "throughput", f"one worker / bare paho, {proto} QoS {qos} (msg/s)", "x",
                      lambda d, k=key: pick(d, "cases", k, "ratio_rate"), "target", ">=", 0.95,
                      lambda d, k=key: f"{pick(d, 'cases', k, 'worker_rate'):,.0f} vs "
                                       f"{pick(d, 'cases', k, 'bare_rate'):,.0f} msg/s; CPU per message "
                                       f"{pick(d, 'cases', k, 'ratio_cpu'):.2f} x bare's"))
    for key, proto, qos in _cases():
        s.append(Spec(f"throughput.{key}.fastest", "throughput",
                      f"one worker / fastest paho (loop_forever, auto ack), {proto} QoS {qos}", "x",
                      lambda d, k=key: pick(d, "cases", k, "ratio_fastest"), "reference",
                      detail=lambda d, k=key: f"{pick(d, 'cases', k, 'worker_rate'):,.0f} vs "
                                              f"{pick(d, 'cases', k, 'fastest_rate'):,.0f} msg/s"))
    for qos in (0, 1):
        s.append(Spec(f"hotpath.qos{qos}", "throughput", f"worker per-message path without a broker, QoS {qos}", "us",
                      lambda d, q=qos: pick(d, "hotpath_us", f"qos{q}", "worker_us"),
                      detail=lambda d, q=qos: f"bare callback {pick(d, 'hotpath_us', f'qos{q}', 'bare_us'):.2f} µs"))
    for k in (1, 2, 3, 4):
        s.append(Spec(f"scaling.{k}", "scaling", f"{k} worker(s) / as many bare subscribers, 0.2 ms handler", "x",
                      lambda d, k=k: pick(d, "workers", str(k), "ratio_rate"), "target", ">=", 0.90,
                      lambda d, k=k: f"{pick(d, 'workers', str(k), 'fleet_rate'):,.0f} vs "
                                     f"{pick(d, 'workers', str(k), 'bare_rate'):,.0f} msg/s"))
    s.append(Spec("startup.in_use", "startup", "add_worker → SUBACK, median (start method in use)", "ms",
                  lambda d: pick(d, "methods", pick(d, "in_use"), "median_ms"), "target", "<=", 15.0,
                  lambda d: (f"{pick(d, 'in_use')}; pid after {pick(d, 'methods', d['in_use'], 'median_process_ms'):.1f}"
                             f" ms; first worker {pick(d, 'methods', d['in_use'], 'first_worker_ms'):.0f} ms; "
                             f"remove {pick(d, 'methods', d['in_use'], 'median_remove_ms'):.0f} ms")))
    for method in ("spawn", "fork"):
        s.append(Spec(f"startup.{method}", "startup", f"add_worker → SUBACK, median, {method}", "ms",
                      lambda d, m=method: pick(d, "methods", m, "median_ms"), "reference"))
    s.append(Spec("memory.idle_uss", "memory", "idle worker USS", "MB", lambda d: pick(d, "idle_worker_uss_mb"),
                  "target", "<=", 6.0, lambda d: f"RSS {pick(d, 'idle_worker_rss_mb'):.1f} MB"))
    s.append(Spec("memory.after_load_uss", "memory", "worker USS after load", "MB",
                  lambda d: pick(d, "after_load", "uss_mb"),
                  detail=lambda d: f"RSS {pick(d, 'after_load', 'rss_mb'):.1f} MB"))
    s.append(Spec("memory.supervisor_100", "memory", "supervisor RSS, 100 idle workers", "MB",
                  lambda d: pick(d, "supervisor_100_rss_mb"), detail=lambda d: f"USS {pick(d, 'supervisor_100_uss_mb'):.1f} MB"))

    def sup_detail(n):
        return lambda d: (f"front end (--json every {pick(d, 'stream_interval_s'):g} s) "
                          f"{pick(d, 'curve', n, 'frontend_cpu_percent'):.2f} %; start "
                          f"{pick(d, 'curve', n, 'start_s'):.1f} s, stop {pick(d, 'curve', n, 'stop_s'):.1f} s")
    s.append(Spec("idle.10", "idle", "supervisor CPU, 10 idle workers", "%core",
                  lambda d: pick(d, "curve", "10", "cpu_percent"), detail=sup_detail("10")))
    s.append(Spec("idle.100", "idle", "supervisor CPU, 100 idle workers", "%core",
                  lambda d: pick(d, "curve", "100", "cpu_percent"), "target", "<=", 1.0, sup_detail("100")))
    s.append(Spec("idle.1000", "idle", "supervisor CPU, 1,000 idle workers", "%core",
                  lambda d: pick(d, "curve", "1000", "cpu_percent"), "target", "<=", 5.0, sup_detail("1000"),
                  full_only=True))
    s.append(Spec("idle.1000.start", "idle", "1,000-worker fleet: start until every worker subscribed", "s",
                  lambda d: pick(d, "curve", "1000", "start_s"), "target", "<=", 10.0,
                  lambda d: f"the first --json line with every worker subscribed; the longest silence of the "
                            f"stream before it: {pick(d, 'curve', '1000', 'stream_max_gap_s'):.1f} s",
                  full_only=True))
    s.append(Spec("idle.1000.stop", "idle", "1,000-worker fleet: stop (SIGINT until the supervisor exits)", "s",
                  lambda d: pick(d, "curve", "1000", "stop_s"), "target", "<=", 5.0, full_only=True))
    s.append(Spec("idle.1000.left", "idle", "1,000-worker fleet: processes left behind after the stop", "count",
                  lambda d: pick(d, "curve", "1000", "left_behind"), "target", "==", 0, full_only=True))
    s.append(Spec("tui.in_process", "tui", "TUI CPU, 100 idle workers, in-process", "%core",
                  lambda d: pick(d, "in_process", "cpu_percent"), "target", "<=", 5.0,
                  lambda d: f"at {pick(d, 'in_process', 'refreshes_per_s'):.2f} refreshes/s; engine alone "
                            f"{pick(d, 'in_process', 'engine_cpu_percent'):.2f} %"))
    s.append(Spec("tui.in_process.refresh", "tui", "TUI refreshes per second, 100 idle workers, in-process", "/s",
                  lambda d: pick(d, "in_process", "refreshes_per_s"), "target", ">=", 0.9))
    s.append(Spec("tui.attached", "tui", "TUI CPU, 100 idle workers, attached over the control socket", "%core",
                  lambda d: pick(d, "attached", "cpu_percent"), "target", "<=", 5.0,
                  lambda d: f"at {pick(d, 'attached', 'refreshes_per_s'):.2f} refreshes/s; supervisor "
                            f"{pick(d, 'attached', 'supervisor_cpu_percent_attached'):.2f} % attached, "
                            f"{pick(d, 'attached', 'supervisor_cpu_percent_detached'):.2f} % detached"))
    s.append(Spec("tui.attached.refresh", "tui", "TUI refreshes per second, 100 idle workers, attached", "/s",
                  lambda d: pick(d, "attached", "refreshes_per_s"), "target", ">=", 0.9))
    s.append(Spec("tui.attached.supervisor", "tui", "supervisor CPU serving one attached TUI, 100 idle workers",
                  "%core", lambda d: pick(d, "attached", "supervisor_cpu_percent_attached"), "target", "<=", 1.0,
                  lambda d: f"{pick(d, 'attached', 'supervisor_cpu_percent_detached'):.2f} % with no TUI attached"))
    s.append(Spec("tui.pair", "tui", "TUI CPU attached / in-process, both on one fleet at the same time", "x",
                  lambda d: pick(d, "pair", "ratio"), "target", "<=", 1.0,
                  lambda d: f"attached {pick(d, 'pair', 'attached_cpu_percent'):.2f} %, in-process "
                            f"{pick(d, 'pair', 'in_process_cpu_percent'):.2f} % (its thread), over "
                            f"{pick(d, 'pair', 'windows')} x {pick(d, 'pair', 'window_s'):.0f} s"))
    s.append(Spec("busy.supervisor", "busy", "busy: supervisor CPU / workers' CPU at the fleet's top rate", "%",
                  lambda d: pick(d, "headless", "fraction_percent"),
                  detail=lambda d: f"{pick(d, 'headless', 'rate'):,.0f} msg/s over {pick(d, 'workers')} workers"))
    s.append(Spec("busy.tui", "busy", "busy: TUI process (engine + UI) CPU / workers' CPU at the top rate", "%",
                  lambda d: pick(d, "tui", "fraction_percent"),
                  detail=lambda d: f"{pick(d, 'tui', 'rate'):,.0f} msg/s"))
    s.append(Spec("drain.lost", "drain", "messages lost draining a worker with a QoS 1 backlog", "count",
                  lambda d: pick(d, "lost_total"), "target", "==", 0,
                  lambda d: f"drain {pick(d, 'drain_s'):.2f} s for a backlog of {pick(d, 'backlog_at_remove'):.0f}; "
                            f"duplicates {pick(d, 'duplicates_total')}"))
    return s


SPECS: list[Spec] = _specs()
FIGURES = tuple(dict.fromkeys(spec.figure for spec in SPECS))


def _verdict(spec: Spec, v) -> str:
    if spec.kind != "target":
        return "REFERENCE" if spec.kind == "reference" else "INFO"
    ok = {">=": v >= spec.limit, "<=": v <= spec.limit, "==": v == spec.limit}[spec.op]
    return "PASS" if ok else "MISS"


def build_rows(doc: dict) -> list[dict]:
    """One row per spec from a run's ``figures`` (and ``meta.quick``): value, unit, verdict, detail, error."""
    figures, quick = doc.get("figures", {}), doc.get("meta", {}).get("quick", False)
    rows = []
    for spec in SPECS:
        row = {"id": spec.id, "figure": spec.figure, "label": spec.label, "kind": spec.kind, "unit": spec.unit,
               "target": spec.target, "value": None, "verdict": None, "detail": "", "error": None}
        data = figures.get(spec.figure)
        if spec.full_only and quick:
            row.update(verdict="NOT RUN", detail="full run only")
        elif data is None:
            row.update(verdict="NOT RUN", detail="left out of this run (--only)")
        else:
            try:
                value = spec.get(data)
                if value is None:
                    raise FigureError("no value")
                row.update(value=value, verdict=_verdict(spec, value))
            except FigureError as exc:
                row.update(verdict="ERROR", error=str(exc)[:600])
            if spec.detail is not None and row["error"] is None:
                try:
                    row["detail"] = spec.detail(data)
                except (FigureError, KeyError, TypeError, ValueError) as exc:
                    row["detail"] = f"(detail unavailable: {exc})"[:200]
        rows.append(row)
    return rows


def result_text(row: dict) -> str:
    """The verdict as shown in the text report and the README."""
    if row["verdict"] == "ERROR":
        return f"ERROR: {row['error']}"
    return row["verdict"]


def header_lines(doc: dict) -> list[str]:
    """Commit, mode, machine and contention, for the text report and the README alike."""
    meta, m = doc["meta"], doc["meta"]["machine"]
    git = meta["git"]
    tree = "with uncommitted changes to " + ", ".join(git["dirty_files"][:5]) if git["dirty"] else "clean tree"
    mem = m["memory_bytes"] / 2**30
    lines = [f"Commit {git['commit_short']} ({tree}), {meta['time']}, "
             f"{'--quick run' if meta['quick'] else 'full run'} of {meta['elapsed_s']:.0f} s.",
             f"Machine: {m['cores']} cores ({m['cpu_model']}), {mem:.0f} GiB, Python {m['python']}, "
             f"paho-mqtt {m['paho_mqtt']}, Mosquitto {m['mosquitto']}."]
    c = meta.get("contention") or {}
    if c.get("shared"):
        lines.append(f"Figures from a shared machine: other processes used a median {c['other_cores_median']:.2f} "
                     f"(max {c['other_cores_max']:.2f}) of the {m['cores']} cores during the run.")
    return lines


def render_text(doc: dict) -> str:
    """bench/last-run.txt: the header, then every row grouped by figure, then the errors in full."""
    lines = header_lines(doc) + [""]
    for fig in FIGURES:
        rows = [r for r in doc["rows"] if r["figure"] == fig]
        lines.append(f"{fig} ({doc['figures'].get(fig, {}).get('elapsed_s', '-')} s)")
        for r in rows:
            value = format_value(r["value"], r["unit"])
            verdict = r["verdict"] if r["verdict"] != "ERROR" else "ERROR"
            target = f"  target {r['target']}" if r["target"] else ""
            lines.append(f"  {verdict:<9} {r['label']}: {value}{target}" + (f"  [{r['detail']}]" if r["detail"] else ""))
        lines.append("")
    errors = [r for r in doc["rows"] if r["error"]]
    if errors:
        lines.append("Errors")
        lines += [f"  {r['id']}: {r['error']}" for r in errors]
    return "\n".join(lines).rstrip() + "\n"


def write_outputs(doc: dict, path: Path) -> None:
    """The run's JSON at ``path`` and its text report next to it (``.txt``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    path.with_suffix(".txt").write_text(render_text(doc))
