"""Drives an MCP server with the official SDK's client: calls the tools a
JSON plan names, in order, and prints what each returned as JSON.

    client.py PLAN stdio CMD ARGS...   the SDK starts CMD (the proxy)
    client.py PLAN http URL            streamable HTTP at URL
"""

import json
import os
import sys

import anyio
from mcp import Client, StdioServerParameters


async def call_all(server, plan):
    results = []
    async with Client(server) as client:
        for tool, args in plan:
            result = await client.call_tool(tool, args)
            text = result.content[0].text if result.content else None
            results.append({"is_error": result.is_error, "text": text})
    return results


def main():
    plan = json.loads(sys.argv[1])
    if sys.argv[2] == "http":
        server = sys.argv[3]
    else:
        # The SDK passes a server only a few variables of its environment;
        # the proxy needs AGENT_MONITOR_SOCKET, so give it all of them.
        server = StdioServerParameters(command=sys.argv[3], args=sys.argv[4:], env=dict(os.environ))
    print(json.dumps(anyio.run(call_all, server, plan)))


if __name__ == "__main__":
    main()
