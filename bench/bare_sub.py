"""A bare paho-mqtt subscriber: the baseline the rmqtui worker is compared with.

It uses the same client options as rmqtui's worker (callback API v2, persistent session:
clean_session=False for 3.1.1, clean_start=False plus a session expiry for v5,
manual_ack=True and an ack after the callback) and does the same per-message work as
the benchmark handler (bench/probe.py).  It prints READY once the broker acknowledged
the subscription, then runs until SIGTERM or --timeout.

``--fastest`` is the reference for the fastest plain paho subscriber: the network loop in the
main thread (``loop_forever``) and paho's automatic acknowledgement (no ``manual_ack``), with
the same session, subscription and per-message probe.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from probe import Probe  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--qos", type=int, default=1)
    ap.add_argument("--protocol", choices=["v5", "v3.1.1"], default="v5")
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--status", required=True, help="probe status file")
    ap.add_argument("--burn-ms", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--fastest", action="store_true", help="loop_forever and automatic acks (the reference)")
    ap.add_argument("--receive-max", type=int, default=0, help="v5 Receive Maximum (0: not sent, broker uses 65535)")
    a = ap.parse_args()

    v5 = a.protocol == "v5"
    kwargs = {} if v5 else {"clean_session": False}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=a.client_id,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, manual_ack=not a.fastest, **kwargs)
    probe = Probe(a.status, burn_ms=a.burn_ms)
    hit = probe.hit
    done = threading.Event()

    def on_connect(c, userdata, flags, rc, props):
        c.subscribe(a.topic, qos=a.qos)

    def on_subscribe(c, userdata, mid, rcs, props):
        print("READY", flush=True)

    def on_message(c, userdata, msg):
        hit()
        if msg.qos:
            c.ack(msg.mid, msg.qos)

    def on_message_fastest(c, userdata, msg):
        hit()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message_fastest if a.fastest else on_message
    ckw = {}
    if v5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        if a.receive_max:
            props.ReceiveMaximum = a.receive_max
        ckw = {"clean_start": False, "properties": props}
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def end_session() -> None:  # so the broker forgets the session (v5: expiry 0)
        if v5:
            p = Properties(PacketTypes.DISCONNECT)
            p.SessionExpiryInterval = 0
            client.disconnect(properties=p)
        else:
            client.disconnect()

    client.connect(a.host, a.port, keepalive=60, **ckw)
    if a.fastest:
        # paho is driven from the main thread; another thread may call disconnect(), which ends loop_forever
        threading.Thread(target=lambda: (done.wait(a.timeout), end_session()), daemon=True).start()
        client.loop_forever()
    else:
        client.loop_start()
        done.wait(a.timeout)
        end_session()
        client.loop_stop()
    if not v5:
        # a 3.1.1 session (and its share-group membership) ends only with a clean connect
        eraser = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=a.client_id,
                             protocol=mqtt.MQTTv311, clean_session=True)
        eraser.connect(a.host, a.port, keepalive=10)
        eraser.loop_start()
        for _ in range(200):
            if eraser.is_connected():
                break
            threading.Event().wait(0.01)
        eraser.disconnect()
        eraser.loop_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
