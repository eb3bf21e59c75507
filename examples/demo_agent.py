#!/usr/bin/env python3
"""A stand-in for an AI coding agent: it runs the kind of tool calls such an
agent makes, as child processes, and leaves one helper running after it
exits. Run it under the monitor with `cargo xtask demo`."""

import http.server
import pathlib
import subprocess
import sys
import tempfile
import threading
import urllib.request


def tool(name, argv):
    print(f"[agent] tool call {name}: {' '.join(argv)}", flush=True)
    return subprocess.run(argv, capture_output=True, text=True).returncode


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="demo-agent-"))
    (work / "notes.txt").write_text("the agent wrote this\n")

    tool("list_directory", ["ls", "-l", str(work)])
    tool("bash", ["sh", "-c", f"wc -l {work}/notes.txt | cut -d' ' -f1"])
    tool("run_python", [sys.executable, "-c", "import platform; print(platform.node())"])
    status = tool("bash", ["sh", "-c", "exit 2"])
    print(f"[agent] the last tool call failed with status {status}", flush=True)

    # An HTTP GET, like a web-fetch tool, against a server on loopback.
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    print(f"[agent] tool call http_get: {url}", flush=True)
    urllib.request.urlopen(url).read()
    server.server_close()

    # A helper that outlives the agent, detached in its own session: the
    # monitor keeps recording it after the agent exits (see --linger).
    subprocess.Popen(
        ["sh", "-c", f"sleep 0.5; rm -r {work}"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print("[agent] done", flush=True)


if __name__ == "__main__":
    main()
