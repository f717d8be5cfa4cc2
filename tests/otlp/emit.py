"""Emits events through the OpenTelemetry Python SDK, as a node would: one
LoggerProvider per sender (its resource's service.instance.id names the node), a
BatchLogRecordProcessor (batches of 512) and the OTLP exporter over gRPC or HTTP,
configured only by the standard OTEL_EXPORTER_OTLP_* environment variables.

usage: emit.py grpc|http < records.jsonl
Each line: {"sender": ..., "event": ..., "message": ..., "time_unix_nano": ...}.
Exits 0 once every provider has flushed and shut down.
"""

import json
import sys

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

if sys.argv[1] == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

providers = {}


def logger(sender):
    if sender not in providers:
        resource = Resource.create({"service.name": "node", "service.instance.id": sender})
        provider = LoggerProvider(resource=resource)
        provider.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(), max_export_batch_size=512)
        )
        providers[sender] = (provider, provider.get_logger("perfstats.tests"))
    return providers[sender][1]


for line in sys.stdin:
    record = json.loads(line)
    logger(record["sender"]).emit(
        timestamp=record["time_unix_nano"],
        event_name=record["event"],
        body=record["message"],
    )

flushed = all(provider.force_flush(30_000) for provider, _ in providers.values())
for provider, _ in providers.values():
    provider.shutdown()
sys.exit(0 if flushed else 1)
