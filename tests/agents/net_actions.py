"""Network actions for the end-to-end tests: a TCP listener, connect and
accept on loopback, a UDP datagram, and a DNS lookup against a local server
on 127.0.0.1:53 that answers with a crafted address, which it then connects
to. Prints the ports it used as JSON on stdout."""

import json
import socket
import struct
import threading

ANSWER = "127.0.0.77"
NAME = "agent-monitor.test"


def dns_server(sock):
    data, peer = sock.recvfrom(512)
    qid = data[:2]
    question = data[12:]
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ANSWER)
    reply = qid + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0) + question + answer
    sock.sendto(reply, peer)


def query(name):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return b"\x12\x34\x01\x00" + struct.pack(">HHHH", 1, 0, 0, 0) + labels + struct.pack(">HH", 1, 1)


def main():
    # A listener on the crafted address, for the connect that follows the lookup.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((ANSWER, 0))
    listener.listen(4)
    port = listener.getsockname()[1]

    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 53))
    server = threading.Thread(target=dns_server, args=(dns,))
    server.start()

    resolver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    resolver.sendto(query(NAME), ("127.0.0.1", 53))
    reply, _ = resolver.recvfrom(512)
    server.join()
    learned = socket.inet_ntoa(reply[-4:])

    client = socket.create_connection((learned, port))
    conn, peer = listener.accept()
    conn.close()
    client.close()

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.sendto(b"hello", ("127.0.0.1", 9))

    print(json.dumps({"port": port, "client_port": peer[1], "addr": learned}))


if __name__ == "__main__":
    main()
