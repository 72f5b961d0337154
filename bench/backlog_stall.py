"""Reproduce the QoS 1 backlog stall: SIGSTOP one consumer, queue N QoS 1 messages, resume it.

    .venv/bin/python bench/backlog_stall.py bare|worker N v5|v3.1.1 [receive_max]

With Mosquitto 2.0.11, N > ~65,535 leaves the consumer with only about N - 65,535 messages and
then nothing (bare paho and rmqtui alike, v5 and v3.1.1, any Receive Maximum).
"""
import sys, argparse, time, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as m
if __name__ == "__main__":
    who, n, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    b = m.Bench(argparse.Namespace(quick=True)); b.start()
    try:
        cfg = b.project([{"name": "tp", "topic": "bench/p", "handler": "bh.noop:handle", "shared": True, "workers": 1, "qos": 1}], protocol=proto)
        st = cfg.parent / "status"
        if who == "bare":
            p = b.start_bare("$share/bare/bench/p", 1, proto, st / "bare.txt", receive_max=int(sys.argv[4]) if len(sys.argv) > 4 else 0); pid = p.pid; files = lambda: [st / "bare.txt"]
        else:
            f = b.start_fleet(cfg); pid = b.subscribed(f, "tp", 1)[0].pid; files = lambda: list(st.glob("w*.txt"))
        r = b.rep([pid], files, "bench/p", n, 1, timeout=25)
        print(who, n, proto, r["received"], r["complete"], round(r["rate"]))
    finally:
        b.close()
