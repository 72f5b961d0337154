"""Figures under load: one worker against bare paho subscribers (throughput), and 1..4 workers against as
many bare subscribers in one ``$share`` group (scaling)."""

from __future__ import annotations

import time

import psutil

from benchlib import PAYLOAD_BYTES, Bench, log, median, ratio

SIDES = ("bare", "worker", "fastest")


def fig_throughput(b: Bench) -> dict:
    """1. One worker vs one bare paho subscriber, QoS 0/1, v5/v3.1.1."""
    n0 = 6_000 if b.quick else 100_000
    reps = 3
    n1 = n0
    out: dict = {"messages": n0, "messages_qos1": n1, "repetitions": reps, "payload_bytes": PAYLOAD_BYTES,
                 "cases": {}}
    for protocol in ("v5", "v3.1.1"):
        for qos in (0, 1):
            n = n1 if qos else n0
            key = f"{protocol}-qos{qos}"
            log(f"throughput {key}: {reps} x {n} messages")
            topic_w, topic_b = f"bench/{key}/w", f"bench/{key}/b"
            cfg = b.project([{"name": "tp", "topic": topic_w, "handler": "bh.noop:handle", "shared": True,
                              "workers": 1, "qos": qos}], protocol=protocol)
            fleet = b.start_fleet(cfg)
            status_dir = cfg.parent / "status"
            bare_status, fast_status = status_dir / "bare.txt", status_dir / "fastest.txt"
            topic_f = f"bench/{key}/f"
            bare = b.start_bare(f"$share/bare/{topic_b}", qos, protocol, bare_status)
            # the reference: paho's fastest plain subscriber (loop_forever in the main thread, automatic ack)
            fast = b.start_bare(f"$share/fast/{topic_f}", qos, protocol, fast_status, fastest=True)
            try:
                wpid = b.subscribed(fleet, "tp", 1)[0].pid
                time.sleep(0.3)
                idle = psutil.Process(wpid).memory_full_info()
                case = {"worker": [], "bare": [], "fastest": [], "worker_idle_rss": idle.rss,
                        "worker_idle_uss": idle.uss}
                h0 = fleet.snapshot().handled
                for r in range(reps):
                    for who in SIDES if r % 2 == 0 else SIDES[::-1]:  # ABC CBA: each side as often first
                        if who == "bare":
                            res = b.rep([bare.pid], lambda: [bare_status], topic_b, n, qos, timeout=120 + n / 500)
                        elif who == "fastest":
                            res = b.rep([fast.pid], lambda: [fast_status], topic_f, n, qos, timeout=120 + n / 500)
                        else:
                            res = b.rep([wpid], lambda: list(status_dir.glob("w*.txt")), topic_w, n, qos,
                                        timeout=120 + n / 500)
                        case[who].append(res)
                        log(f"  {who:6} rep {r}: {res['rate']:9.0f} msg/s  cpu {res['cpu_s_per_100k']:.2f} s/100k"
                            f"  got {res['received']}/{n}  (publish {res['publish_s']:.1f}s)")
                    if r == 0:
                        m = psutil.Process(wpid).memory_full_info()
                        case["worker_after_rss"], case["worker_after_uss"] = m.rss, m.uss
                time.sleep(0.7)  # one more heartbeat
                case["snapshot_handled"] = fleet.snapshot().handled - h0
            finally:
                b.stop_bare([bare, fast])
                b.stop_fleet(fleet)
            for who in SIDES:
                case[f"{who}_rate"] = median([x["rate"] for x in case[who]])
                case[f"{who}_cpu_per_100k"] = median([x["cpu_s_per_100k"] for x in case[who]])
                case[f"{who}_complete"] = all(x["complete"] for x in case[who])
            case["ratio_rate"] = ratio(case["worker_rate"], case["bare_rate"])
            case["ratio_cpu"] = ratio(case["worker_cpu_per_100k"], case["bare_cpu_per_100k"])
            case["ratio_fastest"] = ratio(case["worker_rate"], case["fastest_rate"])
            out["cases"][key] = case
    out["hotpath_us"] = hotpath(b)
    c = out["cases"]
    for qos in (0, 1):
        out[f"v5_over_v311_worker_qos{qos}"] = ratio(c[f"v5-qos{qos}"]["worker_rate"],
                                                     c[f"v3.1.1-qos{qos}"]["worker_rate"])
        out[f"v5_over_v311_bare_qos{qos}"] = ratio(c[f"v5-qos{qos}"]["bare_rate"], c[f"v3.1.1-qos{qos}"]["bare_rate"])
    return out


def fig_scaling(b: Bench) -> dict:
    """2. 1..4 workers on one shared route, 0.2 ms CPU handler, vs as many bare subscribers in one $share group."""
    n = 2_000 if b.quick else 12_000
    reps = 3
    qos, protocol = 1, "v5"
    out: dict = {"messages": n, "repetitions": reps, "qos": qos, "protocol": protocol, "burn_ms": 0.2,
                 "workers": {}}
    topic_w, topic_b = "bench/scale/w", "bench/scale/b"
    cfg = b.project([{"name": "sc", "topic": topic_w, "handler": "bh.burn:handle", "shared": True, "workers": 1,
                      "qos": qos}], protocol=protocol)
    status_dir = cfg.parent / "status"
    fleet = b.start_fleet(cfg)
    try:
        for k in (1, 2, 3, 4):
            log(f"scaling: {k} worker(s), {reps} x {n} messages")
            fleet.scale("sc", k)
            pids = [w.pid for w in b.subscribed(fleet, "sc", k)]
            bare_files = [status_dir / f"bare-k{k}-{i}.txt" for i in range(k)]
            bares = [b.start_bare(f"$share/bare/{topic_b}", qos, protocol, f, burn_ms=0.2) for f in bare_files]
            case = {"fleet": [], "bare": []}
            try:
                for r in range(reps):
                    order = ("bare", "fleet") if r % 2 == 0 else ("fleet", "bare")
                    for who in order:
                        if who == "bare":
                            res = b.rep([p.pid for p in bares], lambda: bare_files, topic_b, n, qos,
                                        timeout=60 + n / 200)
                        else:
                            res = b.rep(pids, lambda: [status_dir / f"w{p}.txt" for p in pids], topic_w, n, qos,
                                        timeout=60 + n / 200)
                        case[who].append(res)
                        log(f"  {who:5} rep {r}: {res['rate']:8.0f} msg/s  per consumer {res['per_consumer']}"
                            f"  got {res['received']}/{n}")
            finally:
                b.stop_bare(bares)
            for who in ("fleet", "bare"):
                case[f"{who}_rate"] = median([x["rate"] for x in case[who]])
                case[f"{who}_spread"] = [min(x["per_consumer"]) if x["per_consumer"] else 0 for x in case[who]][-1:] + \
                    [max(x["per_consumer"]) if x["per_consumer"] else 0 for x in case[who]][-1:]
                case[f"{who}_complete"] = all(x["complete"] for x in case[who])
            case["ratio_rate"] = ratio(case["fleet_rate"], case["bare_rate"])
            out["workers"][str(k)] = case
    finally:
        b.stop_fleet(fleet)
    r1 = out["workers"]["1"]
    for k, case in out["workers"].items():
        case["fleet_speedup"] = ratio(case["fleet_rate"], r1["fleet_rate"])
        case["bare_speedup"] = ratio(case["bare_rate"], r1["bare_rate"])
    return out



def hotpath(b: Bench) -> dict:
    """bench/hotpath.py's per-message figures, or the error it raised (it follows the worker's internals)."""
    try:
        import hotpath as hp

        return {f"qos{q}": hp.measure(50_000 if b.quick else 200_000, q) for q in (0, 1)}
    except Exception as exc:  # noqa: BLE001 - recorded as the figure's error, never hidden
        return {"error": f"bench/hotpath.py: {type(exc).__name__}: {exc}"}
