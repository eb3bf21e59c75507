"""A stand-in MCP server for checking bytes: it records exactly what it
reads, and answers each line it reads with the next of a fixed set of
replies, written in pieces, which it records too.

    echo_server.py RECEIVED_FILE SENT_FILE
"""

import sys
import time

# Odd on purpose: whitespace in and around JSON, CRLF, non-ASCII, a line
# that is not JSON, an empty line, and a response split over two writes.
REPLIES = [
    b'{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{}}}\n',
    '{ "jsonrpc":"2.0" ,"id":1,"result":{"content":[{"type":"text","text":"h\\u00e9llo \u2603"}],"isError":false} }\r\n'.encode(),
    "this is not JSON \u00af\\_(\u30c4)_/\u00af\n".encode(),
    b"\r\n",
    b'{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"\\t"}}\n',
    b'{"jsonrpc":"2.0","id":"two","error":{"code":-32602,"message":"missing arguments"}}\n',
]


def main():
    received = open(sys.argv[1], "wb")
    sent = open(sys.argv[2], "wb")
    out = sys.stdout.buffer
    for n, line in enumerate(sys.stdin.buffer):
        received.write(line)
        received.flush()
        reply = REPLIES[n] if n < len(REPLIES) else b"\n"
        half = len(reply) // 2
        for piece in (reply[:half], reply[half:]):
            out.write(piece)
            out.flush()
            sent.write(piece)
            sent.flush()
            time.sleep(0.01)


if __name__ == "__main__":
    main()
