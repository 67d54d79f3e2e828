"""milter_rtt.py - time gw-milter's RCPT and DATA replies over the milter protocol.

    milter_rtt.py SOCKET CASE N [PAUSE_MS]

SOCKET is inet:PORT@127.0.0.1 or unix:/path. Plays the MTA side of the milter protocol
(version 6) as Postfix does for one SMTP session: option negotiation, connect,
then per message MAIL, RCPT, DATA and end of message, each awaited. CASE says
which recipients each of N messages has and which reply is timed:

    cold     one recipient never seen before (cold-TAG-I@example.com)
    warm     the recipient cold-TAG-I@example.com checked by an earlier "cold"
             run with the same TAG (env RTT_TAG)
    seed     as cold, untimed: fills the cache for a later "warm"

PAUSE_MS (default 0) is slept between messages, outside the timings (the
body transfer and the next client's MAIL of a real session). The first
message is a warm-up (sessions, pools) and is not counted: its RCPT is
printed as "first MS". Prints one line per timed reply: "rcpt MS" and
"data MS" (milliseconds, 3 decimals) and the reply kind ("rcpt-reply c"). Exit 1 when the milter
closed or a reply was not "continue" for a recipient that should pass.
"""
import os
import socket
import struct
import sys
import time


def packet(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def read_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise EOFError("milter closed the connection")
        b += chunk
    return b


def read_packet(s):
    (n,) = struct.unpack(">I", read_exact(s, 4))
    body = read_exact(s, n)
    return body[:1], body[1:]


def zs(*strings):
    return b"".join(x.encode("latin-1") + b"\0" for x in strings)


FINAL = set(b"cartdy")  # continue, accept, reject, tempfail, discard, reply code


def ask(s, cmd, data=b""):
    """Send one command, return (final reply kind, seconds) after the last action packet."""
    t0 = time.perf_counter()
    s.sendall(packet(cmd, data))
    while True:
        kind, _ = read_packet(s)
        if kind[0] in FINAL:
            return kind.decode(), time.perf_counter() - t0


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    case, n = sys.argv[2], int(sys.argv[3])
    pause = (int(sys.argv[4]) if len(sys.argv) == 5 else 0) / 1000.0
    tag = os.environ.get("RTT_TAG", "t")
    if sys.argv[1].startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(sys.argv[1][5:])
    else:
        port, _, host = sys.argv[1][5:].partition("@")
        s = socket.create_connection((host or "127.0.0.1", int(port)), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(packet(b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF)))
    kind, data = read_packet(s)
    if kind != b"O":
        print("no option negotiation", file=sys.stderr)
        return 1
    _, _, proto = struct.unpack(">III", data[:12])
    if not proto & 0x1:
        ask(s, b"C", zs("client.ext.test") + b"4" + struct.pack(">H", 40000) + zs("192.0.2.1"))
    bad = 0
    for i in range(n + 1):
        if pause and i > 0:
            time.sleep(pause)
        rcpt = "cold-%s-%d@example.com" % (tag, i)
        ask(s, b"M", zs("<sender@ext.test>"))
        s.sendall(packet(b"D", b"R" + zs("{rcpt_mailer}", "smtp")))
        kind, rt = ask(s, b"R", zs("<%s>" % rcpt))
        _, dt = ask(s, b"T")
        ask(s, b"E")
        if kind != "c":
            bad += 1
        if i == 0 and case != "seed":
            print("first %.3f" % (rt * 1000))
        if i > 0 and case != "seed":
            print("rcpt %.3f" % (rt * 1000))
            print("data %.3f" % (dt * 1000))
            print("rcpt-reply %s" % kind)
    s.sendall(packet(b"Q"))
    s.close()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
