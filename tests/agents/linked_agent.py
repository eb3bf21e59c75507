"""One tool call seen by three adapters at once, for tests/linked.rs.

    linked_agent.py BIN DATA SERVER_PY

Stands in for Claude Code calling an MCP tool, instrumented with the
OpenTelemetry GenAI conventions as well:

1. the PreToolUse hook (`BIN hook claude-code`, through `/bin/sh -c`, as
   Claude Code runs hooks) declares `mcp__fs__read_file` with the model's
   tool_use id;
2. under an `execute_tool` span carrying that id, the official MCP SDK's
   client calls `read_file` on SERVER_PY through `BIN mcp-proxy`, and the
   server reads DATA/notes.txt;
3. the PostToolUse hook ends the call, and only then is the span flushed
   to the monitor's OTLP receiver (after the fact, as exporters do).

Prints one JSON line: the hooks' exit statuses, the tool's result and the
span's id.
"""

import json
import os
import subprocess
import sys

import anyio
from mcp import Client, StdioServerParameters
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SESSION = "claude-linked-1"
TOOL_USE_ID = "toolu_01LinkedCall"

binary, data, server_py = sys.argv[1], sys.argv[2], sys.argv[3]
notes = os.path.join(data, "notes.txt")
args = {"path": notes}


def hook(event, **fields):
    payload = {
        "session_id": SESSION,
        "transcript_path": "/tmp/transcript.jsonl",
        "cwd": os.getcwd(),
        "hook_event_name": event,
        "permission_mode": "default",
        **fields,
    }
    done = subprocess.run(
        ["/bin/sh", "-c", f"{binary} hook claude-code"],
        input=json.dumps(payload).encode(),
        capture_output=True,
    )
    return {"status": done.returncode, "stderr": done.stderr.decode()}


async def call_tool():
    server = StdioServerParameters(
        command=binary,
        args=["mcp-proxy", "--", sys.executable, server_py],
        env=dict(os.environ),
    )
    async with Client(server) as client:
        result = await client.call_tool("read_file", args)
        return {"is_error": result.is_error, "text": result.content[0].text}


provider = TracerProvider(resource=Resource.create({"service.name": "linked-agent"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
tracer = provider.get_tracer("linked-agent")

report = {}
report["pre"] = hook(
    "PreToolUse",
    tool_name="mcp__fs__read_file",
    tool_input=args,
    tool_use_id=TOOL_USE_ID,
)
with tracer.start_as_current_span(
    "execute_tool read_file",
    attributes={
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "read_file",
        "gen_ai.tool.call.id": TOOL_USE_ID,
        "gen_ai.tool.call.arguments": json.dumps(args),
    },
) as span:
    report["span_id"] = format(span.get_span_context().span_id, "016x")
    report["result"] = anyio.run(call_tool)
report["post"] = hook(
    "PostToolUse",
    tool_name="mcp__fs__read_file",
    tool_input=args,
    tool_use_id=TOOL_USE_ID,
    tool_response={"content": [{"type": "text", "text": report["result"]["text"]}]},
)
# Exported after the call ended, as a batch exporter would: the span
# still joins the call it describes.
report["flushed"] = provider.force_flush(10_000)
provider.shutdown()
print(json.dumps(report))
