#!/usr/bin/env python3
"""smtp_pipe.py - a pipelining SMTP client for bench_proxy.sh: milliseconds per message.

  smtp_pipe.py HOST PORT MESSAGES RCPTS SIZE

One connection; EHLO; then per message, as Postfix's smtp client does with a
server that offers PIPELINING (RFC 2920): MAIL, every RCPT and DATA in one
write, their replies read, then the body and the final dot, its reply read.
Without PIPELINING in the EHLO reply, one command at a time. Prints the mean
milliseconds per message (after the first, which also pays for the
connection). Exits 1 when a reply is not the one expected (2xx, 354).
Does not defend against: a server that never answers (socket timeout 30 s).
"""
import socket
import sys
import time


def replies(f, n):
    out = []
    for _ in range(n):
        while True:
            line = f.readline()
            if not line:
                sys.exit("smtp_pipe: connection closed")
            if line[3:4] != b"-":
                out.append(int(line[:3]))
                break
    return out


def main():
    host, port, messages, rcpts, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    s = socket.create_connection((host, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    replies(f, 1)
    s.sendall(b"EHLO bench.test\r\n")
    ehlo = []
    while True:
        line = f.readline()
        ehlo.append(line)
        if line[3:4] != b"-":
            break
    pipelining = any(l[4:].strip().upper() == b"PIPELINING" for l in ehlo)
    body = (b"Subject: bench\r\n\r\n" + b"x" * 70 + b"\r\n") * max(1, size // 72) + b".\r\n"
    env = [b"MAIL FROM:<s@tenant.test>\r\n"] + [b"RCPT TO:<r%d@dest.test>\r\n" % i for i in range(rcpts)] + [b"DATA\r\n"]
    t_first = None
    t0 = time.monotonic()
    for m in range(messages):
        if m == 1:
            t_first = time.monotonic()
        if pipelining:
            s.sendall(b"".join(env))
            got = replies(f, len(env))
        else:
            got = []
            for c in env:
                s.sendall(c)
                got += replies(f, 1)
        if any(c // 100 != 2 for c in got[:-1]) or got[-1] != 354:
            sys.exit("smtp_pipe: envelope answered %s" % got)
        s.sendall(body)
        got = replies(f, 1)
        if got[0] // 100 != 2:
            sys.exit("smtp_pipe: message answered %s" % got)
    t1 = time.monotonic()
    s.sendall(b"QUIT\r\n")
    s.close()
    if messages > 1:
        print("%.1f" % ((t1 - t_first) * 1000.0 / (messages - 1)))
    else:
        print("%.1f" % ((t1 - t0) * 1000.0))


if __name__ == "__main__":
    main()
