/*
 * fakepeer.h - a scriptable fake SMTP/LMTP server on loopback, for tests.
 *
 * fp_start() listens on an ephemeral loopback port (or a unix socket) and
 * serves connections from a thread, one script per connection, in order. It
 * records every byte each connection received, so tests assert on exactly
 * what the client sent. Scripts are text, one command per line:
 *
 *   # comment
 *   send TEXT       write TEXT and CRLF; escapes \r \n \t \\ \xHH in TEXT
 *   raw TEXT        write TEXT as it is (escapes apply, no CRLF added)
 *   expect PREFIX   read one line; fail unless it starts with PREFIX (case-insensitive).
 *                   "expect" alone reads any line
 *   batch TEXT      the bytes not read yet are exactly TEXT (escapes apply, no CRLF added), all
 *                   there after at most one read, nothing after them: commands the client
 *                   pipelined in one write (or one command sent alone)
 *   data            read a message body up to and including the line "."
 *   sleep MS        pause
 *   sendlong N      write a line of N 'x' bytes and CRLF
 *   starttls        TLS handshake as the server (certificate generated at start)
 *   close           close the connection now (the rest of the script is skipped)
 *   reset           close with a TCP reset (SO_LINGER 0)
 *   serve MS        from here on a plain SMTP server: EHLO offers PIPELINING, MAIL, RSET,
 *                   NOOP 250, RCPT 250 (550 for a local part starting "unknown"), DATA 354
 *                   and 250 after the ".", QUIT 221 and close; anything else 502. Each reply
 *                   leaves MS ms after its command arrived (replies to pipelined commands
 *                   together), as across a link with an MS round trip. Ends at QUIT, when
 *                   the client closes, or after the script timeout without a command
 *   ---             the script of the next connection starts here
 *
 * When a connection's script ends, the peer keeps reading (recording) until
 * the client closes or 2 s pass, then closes. Connections beyond the last
 * script are closed at once without a greeting.
 *
 * Does not defend against: scripts written to deadlock (expect with nothing
 * sent); every read is bounded by the script timeout (default 5 s).
 */
#ifndef FAKEPEER_H
#define FAKEPEER_H

#include <stddef.h>

typedef struct fp_peer fp_peer;

typedef struct fp_opts {
	const char *script;   /* required */
	const char *listen;   /* "127.0.0.1" (default), "::1", or "unix:/path" */
	unsigned port;        /* 0: ephemeral */
	unsigned timeout_ms;  /* bound on each read; 0: 5000 */
	const char *tls_name; /* host name in the generated certificate; NULL: "localhost" */
	unsigned sockbuf;     /* SO_SNDBUF and SO_RCVBUF of each accepted connection; 0: the kernel's */
} fp_opts;

/* Start a peer with a script, on 127.0.0.1 and an ephemeral port. NULL on error (message in err). */
fp_peer *fp_start(const char *script, char *err, size_t errlen);
fp_peer *fp_start_opts(const fp_opts *opts, char *err, size_t errlen);
/* The TCP port it listens on (0 for a unix socket). */
unsigned fp_port(const fp_peer *p);
/* PEM file of the generated self-signed certificate, to use as a CA file. */
const char *fp_cert_file(const fp_peer *p);
/* Wait until every scripted connection has finished, at most timeout_ms. 0 when all ran to the end without a
 * script failure; -1 otherwise. */
int fp_wait(fp_peer *p, unsigned timeout_ms);
/* How many connections were accepted so far. */
unsigned fp_connections(const fp_peer *p);
/* Bytes received on connection i (0-based), NUL-terminated; NULL if no such connection. len_r may be NULL.
 * Plaintext after STARTTLS. */
const char *fp_received(const fp_peer *p, unsigned i, size_t *len_r);
/* The first script failure ("connection 0 line 3: expected RCPT, got ..."), or NULL. */
const char *fp_error(const fp_peer *p);
/* Stop listening, close every connection, join the thread, free, set *p to NULL. */
void fp_stop(fp_peer **p);

/* A loopback TCP port on which nothing listens: connecting is refused. The socket stays
 * bound (not listening) until exit, so no one else can take the port meanwhile. */
unsigned fp_closed_port(void);

#endif
