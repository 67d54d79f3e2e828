#!/usr/bin/python3
"""http_dir.py - a small HTTP(S) user directory for the directory-check tests.

usage: http_dir.py PORT LOGFILE [CERT KEY]

Answers GET /api/mailboxes/RCPT on 127.0.0.1:PORT (TLS with CERT and KEY).
RCPT is the raw, still percent-encoded path segment; the decoded local part
chooses the answer:
  alice, bob, staff        200 {"exists": true}
  err500                   500
  slow                     sleeps 30 s (a client timeout is the answer)
  wrong                    200 with an HTML page (no {"exists": true})
  anything else            404
Each request's raw path (exactly as the client sent it) and its Authorization
header are appended to LOGFILE, one line each ("PATH <raw path> AUTH <value or
->" "PORT <client port>"), before the answer, so a test can check that no recipient changed the
path. Stops on SIGTERM.
"""
import signal
import ssl
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KNOWN = {"alice", "bob", "staff"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client may reuse the connection

    def log_message(self, fmt, *args):
        pass

    def answer(self, code, body, ctype="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with open(LOG, "a") as f:
            f.write("PATH %s AUTH %s PORT %d\n" % (self.path, self.headers.get("Authorization", "-"),
                                                   self.client_address[1]))
        prefix = "/api/mailboxes/"
        if not self.path.startswith(prefix):
            self.answer(400, '{"error": "bad path"}')
            return
        rcpt = urllib.parse.unquote(self.path[len(prefix):])
        local = rcpt.rsplit("@", 1)[0]
        if local in KNOWN:
            self.answer(200, '{"exists": true}')
        elif local == "err500":
            self.answer(500, '{"error": "internal"}')
        elif local == "slow":
            time.sleep(30)
            self.answer(200, '{"exists": true}')
        elif local == "wrong":
            self.answer(200, "<html><body>Please log in</body></html>", "text/html")
        else:
            self.answer(404, '{"exists": false}')


PORT = int(sys.argv[1])
LOG = sys.argv[2]
srv = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
srv.daemon_threads = True
if len(sys.argv) > 4:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
srv.serve_forever()
