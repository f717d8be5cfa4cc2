#!/usr/bin/env python3
"""Report one event to perfstats from Python.

Generates the gRPC stubs from ../../proto with grpcio-tools (into a temporary
folder), then calls perfstats.v1.PerformanceStats/ReportStat.

    pip install grpcio grpcio-tools
    python3 examples/python/report.py --addr 127.0.0.1:12345 \
        --sender 1f --event EVENT_NEW_BLOCK_RECEIVED --message "block 17"
"""

import argparse
import importlib
import pathlib
import sys
import tempfile
import uuid

import grpc
from grpc_tools import protoc

PROTO_ROOT = pathlib.Path(__file__).resolve().parents[2] / "proto"


def load_stubs(out_dir):
    """Compiles perfstats.proto into out_dir and imports the generated modules."""
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(PROTO_ROOT / "perfstats/v1/perfstats.proto"),
    ])
    if status != 0:
        sys.exit(f"protoc failed with status {status}")
    sys.path.insert(0, out_dir)
    messages = importlib.import_module("perfstats.v1.perfstats_pb2")
    services = importlib.import_module("perfstats.v1.perfstats_pb2_grpc")
    return messages, services


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:12345")
    parser.add_argument("--sender", required=True)
    parser.add_argument("--event", required=True, help="e.g. EVENT_NEW_BLOCK_RECEIVED")
    parser.add_argument("--message", required=True)
    parser.add_argument("--token", help="bearer token, if the server requires one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out_dir:
        messages, services = load_stubs(out_dir)
        report = messages.PerformanceData(
            sender=args.sender,
            event=messages.Event.Value(args.event),
            message=args.message,
            report_id=str(uuid.uuid4()),  # makes a retry of this report safe
        )
        metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
        with grpc.insecure_channel(args.addr) as channel:
            stub = services.PerformanceStatsStub(channel)
            try:
                ack = stub.ReportStat(report, metadata=metadata, timeout=10)
            except grpc.RpcError as error:
                sys.exit(f"refused: {error.code().name}: {error.details()}")
    print(f"seq={ack.seq} run={ack.run} duplicate={str(ack.duplicate).lower()}")


if __name__ == "__main__":
    main()
