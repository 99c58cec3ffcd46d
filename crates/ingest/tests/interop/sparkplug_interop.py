#!/usr/bin/env python3
"""Sparkplug B interoperability check, run by crates/ingest/tests/interop.rs.

Compiles crates/ingest/proto/sparkplug_b.proto with grpc_tools.protoc (the `grpcio-tools`
package from PyPI ships protoc inside its wheel) into a temporary directory, then

1. reads lines `topic hex-payload` from stdin (messages encoded by the Rust EdgeNode) and decodes
   them with the generated Python classes, and
2. builds an NBIRTH, a DBIRTH, an NDATA and a DDATA with the generated classes, the way a
   third-party edge node would,

and prints one JSON document: {"decoded": [...], "messages": [{"topic", "payload"(hex)}]}.

Needs: python3 with `protobuf` and `grpcio-tools`.
"""

import importlib
import json
import os
import sys
import tempfile

from grpc_tools import protoc

PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
NOW_MS = 1740830400000  # 2025-03-01T12:00:00Z, the "now" of the Rust test


def compile_proto():
    out = tempfile.mkdtemp(prefix="sparkplug_pb_")
    status = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", "sparkplug_b.proto"])
    if status != 0:
        sys.exit(f"protoc failed with status {status}")
    sys.path.insert(0, out)
    return importlib.import_module("sparkplug_b_pb2")


def metric_value(metric):
    kind = metric.WhichOneof("value")
    return None if kind is None else [kind, getattr(metric, kind)]


def decode(pb, topic, payload_hex):
    payload = pb.Payload()
    payload.ParseFromString(bytes.fromhex(payload_hex))
    return {
        "topic": topic,
        "timestamp": payload.timestamp if payload.HasField("timestamp") else None,
        "seq": payload.seq if payload.HasField("seq") else None,
        "metrics": [
            {
                "name": m.name if m.HasField("name") else None,
                "alias": m.alias if m.HasField("alias") else None,
                "datatype": m.datatype if m.HasField("datatype") else None,
                "value": metric_value(m),
            }
            for m in payload.metrics
        ],
    }


def encode(pb):
    DT = pb.DataType
    messages = []

    def message(topic, seq, timestamp, metrics):
        payload = pb.Payload()
        payload.timestamp = timestamp
        if seq is not None:
            payload.seq = seq
        for fill in metrics:
            fill(payload.metrics.add())
        messages.append({"topic": topic, "payload": payload.SerializeToString().hex()})

    def metric(name=None, alias=None, datatype=None, **value):
        def fill(m):
            if name is not None:
                m.name = name
            if alias is not None:
                m.alias = alias
            if datatype is not None:
                m.datatype = datatype
            for field, v in value.items():
                setattr(m, field, v)
        return fill

    t0 = NOW_MS - 60_000
    message("spBv1.0/hk/NBIRTH/py-edge", 0, t0, [
        metric("bdSeq", None, DT.UInt64, long_value=7),
        metric("Node Control/Rebirth", None, DT.Boolean, boolean_value=False),
        metric("Temperature", 1, DT.Double, double_value=21.25),
        metric("Count", 2, DT.Int32, int_value=(-5) & 0xFFFFFFFF),
    ])
    message("spBv1.0/hk/DBIRTH/py-edge/press-1", 1, t0, [
        metric("Force [kN]", 3, DT.Float, float_value=12.5),
        metric("Running", 4, DT.Boolean, boolean_value=True),
        metric("Cycles", 5, DT.UInt64, long_value=123456789),
        metric("state", 6, DT.String, string_value="setup"),
    ])
    message("spBv1.0/hk/NDATA/py-edge", 2, t0 + 1000, [
        metric(alias=1, double_value=22.5),
        metric(alias=2, int_value=(-6) & 0xFFFFFFFF),
    ])
    ddata_metric = metric(alias=3, float_value=13.0)
    own_time = metric(alias=5, long_value=123456790)

    def with_timestamp(m):
        own_time(m)
        m.timestamp = t0 + 1500

    message("spBv1.0/hk/DDATA/py-edge/press-1", 3, t0 + 2000, [
        ddata_metric,
        with_timestamp,
        metric(alias=6, string_value="running"),
    ])
    return messages


def main():
    pb = compile_proto()
    decoded = []
    for line in sys.stdin:
        line = line.strip()
        if line:
            topic, payload_hex = line.split(" ", 1)
            decoded.append(decode(pb, topic, payload_hex))
    print(json.dumps({"decoded": decoded, "messages": encode(pb)}))


if __name__ == "__main__":
    main()
