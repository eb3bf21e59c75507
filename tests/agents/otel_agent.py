"""An agent instrumented with the OpenTelemetry GenAI conventions, and
nothing of the monitor's: it exports its spans over OTLP/HTTP.

    otel_agent.py DATA PORT [declare] [early]

Under a `chat` span the (pretend) model asks for two tools; each runs under
its `execute_tool` span: `read_file` reads DATA/notes.txt, `fetch` GETs
http://127.0.0.1:PORT/page. A second `chat` span sends the whole
conversation again, ending with the tools' results, as a tool loop does,
and the model answers. Then, outside any span, it reads
DATA/../secret.txt. The spans go through the SDK's batch processor and its
protobuf exporter, flushed at the end, so they reach the monitor after
everything they describe. A last `execute_tool` span (`list_dir` of DATA)
is sent by hand in OTLP/JSON with urllib. The endpoint is the SDK's own
OTEL_EXPORTER_OTLP_ENDPOINT. Prints one JSON line: the span ids, the
flush's result and the JSON export's response.

With `declare`, the agent also declares the conversation's session and
the `read_file` call itself, on the declaration socket as the SDK does,
under the model's id of the call: the span declaring it later must join
that call, not be refused as one id used twice. The replies are in the
report too.

With `early`, before anything else the agent exports the span of a call
that does nothing (`now`), and waits for the export: the daemon holds an
agent's undeclared actions for late spans only once one of its spans has
declared a call.
"""

import base64
import json
import os
import socket
import sys
import urllib.request

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

CONVERSATION = "conv-otel-1"

data, port = sys.argv[1], int(sys.argv[2])
declare = "declare" in sys.argv[3:]
early = "early" in sys.argv[3:]
replies = []


class Socket:
    """The declaration protocol, one request and its reply at a time."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(os.environ["AGENT_MONITOR_SOCKET"])
        self.reader = self.sock.makefile("r")

    def request(self, **fields):
        self.sock.sendall((json.dumps(fields) + "\n").encode())
        replies.append(json.loads(self.reader.readline()))


monitor = Socket() if declare else None
if monitor:
    monitor.request(type="session.start", session_id=CONVERSATION)
notes = os.path.join(data, "notes.txt")
page = f"http://127.0.0.1:{port}/page"
resource = Resource.create({"service.name": "otel-agent"})

provider = TracerProvider(resource=resource)
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("otel-agent")


def tool_attributes(name, call_id, arguments):
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.call.arguments": json.dumps(arguments),
        "gen_ai.conversation.id": CONVERSATION,
    }


def span_id(span):
    return format(span.get_span_context().span_id, "016x")


SYSTEM = {"role": "system", "parts": [{"type": "text", "content": "You are a test agent."}]}
USER = {"role": "user", "parts": [{"type": "text", "content": "Read the notes and fetch the page."}]}


ASKED = {
    "role": "assistant",
    "finish_reason": "tool_call",
    "parts": [
        {"type": "text", "content": "I will read the notes, then fetch the page."},
        {"type": "tool_call", "id": "call_read", "name": "read_file", "arguments": {"path": notes}},
        {"type": "tool_call", "id": "call_fetch", "name": "fetch", "arguments": {"url": page}},
    ],
}
results = {}

ids = {}
if early:
    with tracer.start_as_current_span(
        "execute_tool now", attributes=tool_attributes("now", "call_now", {})
    ) as span:
        ids["now"] = span_id(span)
    provider.force_flush()

with tracer.start_as_current_span(
    "invoke_agent otel-agent",
    attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": CONVERSATION},
):
    with tracer.start_as_current_span(
        "chat fake-model",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "fake-model",
            "gen_ai.conversation.id": CONVERSATION,
            "gen_ai.input.messages": json.dumps([SYSTEM, USER]),
            "gen_ai.output.messages": json.dumps([ASKED]),
        },
    ) as chat:
        ids["chat"] = span_id(chat)

    with tracer.start_as_current_span(
        "execute_tool read_file", attributes=tool_attributes("read_file", "call_read", {"path": notes})
    ) as span:
        ids["read"] = span_id(span)
        if monitor:
            monitor.request(type="tool.start", call_id="call_read", tool="read_file",
                            args={"path": notes}, tool_use_id="call_read")
        with open(notes) as f:
            results["call_read"] = f.read()
        if monitor:
            monitor.request(type="tool.end", call_id="call_read", status="ok")
        span.set_attribute("gen_ai.tool.call.result", results["call_read"])

    with tracer.start_as_current_span(
        "execute_tool fetch", attributes=tool_attributes("fetch", "call_fetch", {"url": page})
    ) as span:
        ids["fetch"] = span_id(span)
        with urllib.request.urlopen(page) as response:
            results["call_fetch"] = response.read().decode()
        span.set_attribute("gen_ai.tool.call.result", results["call_fetch"])

    # The tool loop's next round: the same input again, with the tools'
    # results after it. Its prompt is the first round's.
    with tracer.start_as_current_span(
        "chat fake-model",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "fake-model",
            "gen_ai.conversation.id": CONVERSATION,
            "gen_ai.input.messages": json.dumps([
                SYSTEM,
                USER,
                ASKED,
                {"role": "tool", "parts": [
                    {"type": "tool_call_response", "id": call_id, "response": result}
                    for call_id, result in results.items()
                ]},
            ]),
            "gen_ai.output.messages": json.dumps([{
                "role": "assistant",
                "finish_reason": "stop",
                "parts": [{"type": "text", "content": "The notes say: the notes."}],
            }]),
        },
    ) as chat:
        ids["answer"] = span_id(chat)

# Nothing declares this one.
with open(os.path.join(data, "..", "secret.txt")) as f:
    f.read()

# The same conventions in OTLP/JSON: the SDK's encoder, in protobuf's JSON
# mapping with hex ids, as OTLP/JSON has them.
memory = InMemorySpanExporter()
by_hand = TracerProvider(resource=resource)
by_hand.add_span_processor(SimpleSpanProcessor(memory))
with by_hand.get_tracer("otel-agent").start_as_current_span(
    "execute_tool list_dir", attributes=tool_attributes("list_dir", "call_json", {"path": data})
) as span:
    ids["list"] = span_id(span)
    span.set_attribute("gen_ai.tool.call.result", json.dumps(sorted(os.listdir(data))))


def hex_ids(value):
    if isinstance(value, dict):
        return {
            k: base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else hex_ids(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [hex_ids(v) for v in value]
    return value


flushed = provider.force_flush()
request = urllib.request.Request(
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] + "/v1/traces",
    data=json.dumps(hex_ids(MessageToDict(encode_spans(memory.get_finished_spans()), use_integers_for_enums=True))).encode(),
    headers={"Content-Type": "application/json"},
)
with urllib.request.urlopen(request) as response:
    json_export = {"status": response.status, "body": response.read().decode()}
provider.shutdown()
print(json.dumps({"spans": ids, "flushed": flushed, "json_export": json_export, "replies": replies}))
