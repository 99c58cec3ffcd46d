"""Interop check driven by crates/mqtt/tests/interop.rs: the Eclipse Paho Python client (PyPI
package paho-mqtt, MQTT 3.1.1) against our broker.

Usage: paho_interop.py HOST PORT PASSWORD. Connects as user dev-a with a will, subscribes to
site/a/echo (a retained message waits there), publishes one message at each QoS 0, 1 and 2 to
site/a/paho and disconnects cleanly. Prints what it saw, one fact per line; on a refused
connection it prints "refused <reason>" instead.
"""

import sys
import threading

import paho.mqtt.client as mqtt


def main() -> int:
    host, port, password = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    connected = threading.Event()
    subscribed = threading.Event()
    got_message = threading.Event()
    outcome = {}

    def on_connect(_client, _userdata, _flags, reason_code, _properties):
        outcome["connect"] = reason_code
        connected.set()

    def on_subscribe(_client, _userdata, _mid, reason_codes, _properties):
        outcome["granted"] = [int(code.value) for code in reason_codes]
        subscribed.set()

    def on_message(_client, _userdata, message):
        outcome["message"] = message
        got_message.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-device", protocol=mqtt.MQTTv311)
    client.username_pw_set("dev-a", password)
    client.will_set("site/a/death", b"paho gone", qos=1)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port, keepalive=5)
    client.loop_start()
    try:
        if not connected.wait(5):
            print("no connack")
            return 1
        if outcome["connect"].is_failure:
            print(f"refused {outcome['connect']}")
            return 0
        print("connected")
        client.subscribe("site/a/echo", qos=1)
        if not subscribed.wait(5) or not got_message.wait(5):
            print("no suback or no retained message")
            return 1
        message = outcome["message"]
        print(f"granted {outcome['granted']}")
        print(f"received {message.topic} {message.payload.decode()} retain={int(message.retain)}")
        for qos in (0, 1, 2):
            info = client.publish("site/a/paho", f"paho qos {qos}", qos=qos)
            info.wait_for_publish(5)
            print(f"published qos {qos} ok={info.is_published()}")
        client.disconnect()
        return 0
    finally:
        client.loop_stop()


if __name__ == "__main__":
    sys.exit(main())
