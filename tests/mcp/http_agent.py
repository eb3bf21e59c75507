"""An agent whose MCP server speaks streamable HTTP: starts the server and
`agent-monitor mcp-proxy --listen` in front of it, runs client.py's plan
through the proxy, then stops both (the proxy with SIGTERM, as a service
manager would) and prints the results.

    http_agent.py BIN PLAN SERVER_PORT PROXY_PORT sse|json
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import anyio

from client import call_all

HERE = os.path.dirname(os.path.abspath(__file__))


def wait_for_port(port, process):
    for _ in range(400):
        if process.poll() is not None:
            sys.exit(f"{process.args[0]} exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.025)
    sys.exit(f"nothing listens on port {port}")


def main():
    bin, plan, server_port, proxy_port, answers = (
        sys.argv[1],
        json.loads(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
        sys.argv[5],
    )
    # The server logs to stdout: keep it off ours, which is the report.
    server = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "server.py"), "http", str(server_port), answers], stdout=sys.stderr
    )
    proxy = None
    try:
        wait_for_port(server_port, server)
        proxy = subprocess.Popen(
            [bin, "mcp-proxy", "--listen", f"127.0.0.1:{proxy_port}", "--upstream", f"http://127.0.0.1:{server_port}"]
        )
        wait_for_port(proxy_port, proxy)
        results = anyio.run(call_all, f"http://127.0.0.1:{proxy_port}/mcp", plan)
    finally:
        if proxy is not None:
            proxy.send_signal(signal.SIGTERM)
            proxy_status = proxy.wait(timeout=30)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    print(json.dumps({"results": results, "proxy_status": proxy_status}))


if __name__ == "__main__":
    main()
