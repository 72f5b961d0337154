"""A SIGSTOPped consumer, N QoS 1 messages queued for it, then resumed: does it get all N?

    .venv/bin/python bench/backlog_stall.py bare|worker N v5|v3.1.1 [receive_max]

Found while writing the benchmark: a single ``mosquitto_pub -l -q 1`` (2.0.11) fed more than
65,535 lines silently loses about 65,535 of them (exit status 0), so the consumer got only
~N - 65,535.  It is the publisher (message ids wrap in libmosquitto's own queue, cf.
eclipse-mosquitto/mosquitto#2431), not the broker or rmqtui: the same 100k published as
2 x 50k reach the consumer in full.  bench/benchlib.py's ``publish`` therefore sends QoS 1
loads in chunks of 50,000.
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
