"""Writes the receiver's fixtures with the OpenTelemetry Python SDK's own
OTLP encoder (opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http
1.45.2): export.pb is the protobuf body its HTTP exporter sends, and
export.json the same request in OTLP/JSON, which is protobuf's JSON mapping
with hex trace and span ids and enums as numbers.

Run it from this directory: python3 generate.py
"""

import base64
import json

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Status, StatusCode


class Counting(IdGenerator):
    """Fixed ids, so that the fixtures do not change from run to run."""

    def __init__(self):
        self.span = 0x1000000000000000

    def generate_span_id(self):
        self.span += 1
        return self.span

    def generate_trace_id(self):
        return 0x0AF7651916CD43DD8448EB211C80319C


T0 = 1_750_000_000_000_000_000
MS = 1_000_000

exporter = InMemorySpanExporter()
provider = TracerProvider(
    resource=Resource.create({"service.name": "fixture-agent", "service.instance.id": "fixture-1"}),
    id_generator=Counting(),
)
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("fixture")

with tracer.start_as_current_span("invoke_agent fixture", start_time=T0, end_on_exit=False) as agent:
    chat = tracer.start_span(
        "chat gpt-4o",
        start_time=T0 + 1 * MS,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.conversation.id": "conv-1",
            "gen_ai.input.messages": json.dumps([
                {"role": "system", "parts": [{"type": "text", "content": "You read files."}]},
                {"role": "user", "parts": [{"type": "text", "content": "What is in notes.txt?"}]},
            ]),
            "gen_ai.output.messages": json.dumps([
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "text", "content": "I will read it."},
                        {"type": "tool_call", "id": "call_1", "name": "read_file",
                         "arguments": {"path": "/srv/notes.txt"}},
                    ],
                    "finish_reason": "tool_call",
                }
            ]),
            "gen_ai.usage.input_tokens": 42,
            "gen_ai.request.temperature": 0.5,
            "gen_ai.response.finish_reasons": ["tool_call"],
        },
    )
    chat.end(end_time=T0 + 2 * MS)

    tool = tracer.start_span(
        "execute_tool read_file",
        start_time=T0 + 3 * MS,
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "read_file",
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": "call_1",
            "gen_ai.tool.call.arguments": json.dumps({"path": "/srv/notes.txt"}),
            "gen_ai.tool.call.result": "the notes",
            "gen_ai.conversation.id": "conv-1",
        },
    )
    tool.end(end_time=T0 + 4 * MS)

    failed = tracer.start_span(
        "execute_tool fetch",
        start_time=T0 + 5 * MS,
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.call.arguments": "http://169.254.169.254/",
            "error.type": "TimeoutError",
        },
    )
    failed.set_status(Status(StatusCode.ERROR, "timed out after 10 s"))
    failed.end(end_time=T0 + 6 * MS)

    http = tracer.start_span(
        "GET /v1/models",
        start_time=T0 + 7 * MS,
        attributes={"http.request.method": "GET", "http.response.status_code": 200},
    )
    http.end(end_time=T0 + 8 * MS)

    older = tracer.start_span(
        "chat claude",
        start_time=T0 + 9 * MS,
        attributes={"gen_ai.operation.name": "chat", "gen_ai.system": "anthropic"},
    )
    older.add_event(
        "gen_ai.user.message",
        {"gen_ai.event.content": json.dumps({"content": "List /tmp."})},
        timestamp=T0 + 9 * MS,
    )
    older.add_event(
        "gen_ai.choice",
        {
            "gen_ai.event.content": json.dumps({
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "content": "Listing it.",
                    "tool_calls": [{
                        "id": "toolu_9",
                        "type": "function",
                        "function": {"name": "list_dir", "arguments": json.dumps({"path": "/tmp"})},
                    }],
                },
            })
        },
        timestamp=T0 + 10 * MS,
    )
    older.end(end_time=T0 + 10 * MS)
    agent.end(end_time=T0 + 11 * MS)

request = encode_spans(exporter.get_finished_spans())
with open("export.pb", "wb") as out:
    out.write(request.SerializeToString())


def hex_ids(value):
    """OTLP/JSON's ids are hex where protobuf's mapping writes base64."""
    if isinstance(value, dict):
        return {
            k: base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else hex_ids(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [hex_ids(v) for v in value]
    return value


with open("export.json", "w") as out:
    json.dump(hex_ids(MessageToDict(request, use_integers_for_enums=True)), out, indent=1)
    out.write("\n")
