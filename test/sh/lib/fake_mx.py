#!/usr/bin/python3
# fake_mx.py - two misbehaving SMTP destinations for gw-proxy's lab
# (test/sh/proxy_lab.sh), one per process:
#
#   fake_mx.py tarpit ADDR RECORD [DELAY]
#       answers every reply one byte every DELAY seconds (0.25): a tarpit.
#   fake_mx.py blocklist ADDR RECORD BLOCKED
#       refuses RCPT from source address BLOCKED with a 554 5.7.1 "listed at"
#       verdict, as a destination that checks a DNS blocklist does; takes
#       mail from any other address.
#
# ADDR is "IP:PORT". Each message taken appends "delivered from SOURCE" to
# RECORD; each connection "connect from SOURCE". A thread per connection.
# Not an SMTP implementation: no pipelining, no size limit, no TLS; it does
# not defend against anything but the lab's own clients.
import socket
import sys
import threading
import time

mode, addr, record = sys.argv[1], sys.argv[2], sys.argv[3]
arg = sys.argv[4] if len(sys.argv) > 4 else None
host, port = addr.rsplit(":", 1)
delay = float(arg) if mode == "tarpit" and arg else 0.25
lock = threading.Lock()


def note(text):
    with lock, open(record, "a") as r:
        r.write(text + "\n")


def serve(c, peer):
    f = c.makefile("rb")

    def send(*lines):
        data = "".join(line + "\r\n" for line in lines).encode()
        if mode != "tarpit":
            c.sendall(data)
            return
        for i in range(len(data)):
            c.sendall(data[i : i + 1])
            time.sleep(delay)

    blocked = mode == "blocklist" and peer == arg
    note("connect from %s" % peer)
    send("220 %s.lab.invalid ESMTP" % mode)
    while True:
        line = f.readline()
        if not line:
            break
        cmd = line.decode("latin-1").strip().upper()
        if cmd.startswith("QUIT"):
            send("221 2.0.0 Bye")
            break
        if cmd.startswith("EHLO"):
            send("250-%s.lab.invalid" % mode, "250 ENHANCEDSTATUSCODES")
        elif cmd.startswith("HELO") or cmd.startswith("MAIL") or cmd.startswith("RSET"):
            send("250 2.0.0 Ok")
        elif cmd.startswith("RCPT"):
            if blocked:
                send("554 5.7.1 Service unavailable; Client host [%s] listed at bl.lab.invalid" % peer)
            else:
                send("250 2.1.5 Ok")
        elif cmd.startswith("DATA"):
            send("354 End data with <CR><LF>.<CR><LF>")
            while f.readline() not in (b".\r\n", b""):
                pass
            note("delivered from %s" % peer)
            send("250 2.0.0 Ok: queued")
        else:
            send("502 5.5.2 Error: command not recognized")
    c.close()


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(port)))
s.listen(64)
while True:
    conn, a = s.accept()
    threading.Thread(target=serve, args=(conn, a[0]), daemon=True).start()
