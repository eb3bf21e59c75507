"""A small MCP server whose tools really act, for tests/mcp.rs.

`server.py stdio` serves over stdin/stdout; `server.py http PORT [json]`
serves streamable HTTP on 127.0.0.1:PORT at /mcp, answering POSTs with
server-sent events, or with `json` with plain JSON bodies.
"""

import socket
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("agent-monitor-test")


@server.tool()
def read_file(path: str) -> str:
    """Returns the text of a file."""
    with open(path) as f:
        return f.read()


@server.tool()
def write_file(path: str, content: str) -> str:
    """Writes text to a file."""
    with open(path, "w") as f:
        f.write(content)
    return f"wrote {len(content)} bytes"


@server.tool()
def fetch(url: str) -> str:
    """Connects to a loopback http:// URL and returns the first line it answers."""
    rest = url.removeprefix("http://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(f"GET /{path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n".encode())
        return conn.recv(4096).decode(errors="replace").splitlines()[0]


@server.tool()
def fail(message: str) -> str:
    """Always raises: the client gets a result with isError."""
    raise RuntimeError(message)


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.run(
            transport="streamable-http",
            host="127.0.0.1",
            port=int(sys.argv[2]),
            json_response=sys.argv[3:4] == ["json"],
        )
    else:
        server.run()
