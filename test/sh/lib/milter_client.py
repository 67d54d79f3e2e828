"""milter_client.py - a minimal MTA side of the milter protocol (version 6) for tests.

    milter_client.py SOCKET SCRIPT

SOCKET is unix:/path or inet:PORT@127.0.0.1. SCRIPT is a list of steps, one per
line: "connect HOST ADDR", "helo NAME", "macro STAGE NAME [VALUE ...]" (any number
of strings, so a name without a value can be sent), "mail ADDR", "rcpt ADDR",
"idle SECONDS" (wait for the milter to close the connection, at most SECONDS),
"quit". Steps the milter negotiated away (SMFIP_NO*) are not sent; replies it
waived (SMFIP_NR_*) are not awaited. Prints one line per reply
("REPLY rcpt c", ...) and "CLOSED" when the milter closed the connection.
Exit status: 0 script done, 1 connection lost or refused (reason on stdout),
2 usage. Every read is bounded (10 s, or the idle step's bound).
"""
import socket
import struct
import sys
import time

SMFIP = {"connect": 0x1, "helo": 0x2, "mail": 0x4, "rcpt": 0x8}
SMFIP_NR = {"connect": 0x1000, "helo": 0x2000, "mail": 0x4000, "rcpt": 0x8000}
STAGE = {"connect": b"C", "helo": b"H", "mail": b"M", "rcpt": b"R"}


def open_socket(spec):
    if spec.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(spec[5:])
        return s
    if spec.startswith("inet:"):
        port, _, host = spec[5:].partition("@")
        return socket.create_connection((host or "127.0.0.1", int(port)), timeout=10)
    raise ValueError("socket must be unix:/path or inet:PORT@HOST")


def packet(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


def read_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            return None
        b += chunk
    return b


def read_packet(s):
    head = read_exact(s, 4)
    if head is None:
        return None, None
    (n,) = struct.unpack(">I", head)
    body = read_exact(s, n)
    if body is None or n == 0:
        return None, None
    return body[:1], body[1:]


def zs(*strings):
    return b"".join(x.encode("latin-1") + b"\0" for x in strings)


def main():
    if len(sys.argv) != 3:
        print("usage: milter_client.py SOCKET SCRIPT", file=sys.stderr)
        return 2
    try:
        s = open_socket(sys.argv[1])
    except OSError as e:
        print("REFUSED %s" % e.strerror)
        return 1
    try:
        # OPTNEG: version 6, every action, every step and reply that may be left out.
        s.sendall(packet(b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF)))
        cmd, data = read_packet(s)
        if cmd != b"O":
            print("LOST optneg")
            return 1
        _, _, proto = struct.unpack(">III", data[:12])
        for line in open(sys.argv[2]).read().splitlines():
            w = line.split()
            if not w:
                continue
            step = w[0]
            if step == "macro":
                s.sendall(packet(b"D", STAGE[w[1]] + zs(*w[2:])))
                continue
            if step == "quit":
                s.sendall(packet(b"Q"))
                break
            if step == "idle":
                s.settimeout(float(w[1]))
                t0 = time.monotonic()
                try:
                    gone = s.recv(1) == b""
                except socket.timeout:
                    gone = False
                except ConnectionResetError:
                    gone = True
                print("CLOSED %.1f" % (time.monotonic() - t0) if gone else "OPEN")
                return 0
            if step == "connect":
                data = zs(w[1]) + b"4" + struct.pack(">H", 12345) + zs(w[2])
            elif step == "helo":
                data = zs(w[1])
            elif step in ("mail", "rcpt"):
                data = zs("<%s>" % w[1])
            else:
                print("bad step %s" % step, file=sys.stderr)
                return 2
            if proto & SMFIP[step]:
                continue
            s.sendall(packet({"connect": b"C", "helo": b"H", "mail": b"M", "rcpt": b"R"}[step], data))
            if proto & SMFIP_NR[step]:
                continue
            cmd, data = read_packet(s)
            if cmd is None:
                print("CLOSED")
                return 1
            print("REPLY %s %s" % (step, cmd.decode("latin-1")))
            sys.stdout.flush()
        return 0
    except (OSError, socket.timeout) as e:
        print("LOST %s" % e)
        return 1
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main())
