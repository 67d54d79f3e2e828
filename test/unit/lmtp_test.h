/*
 * lmtp_test.h - helpers shared by test_lmtp.c and test_lmtp_fallback.c:
 * start fake peers, make delivery handles with short timeouts, compare the
 * exact bytes a peer received, and check per-recipient results.
 *
 * Does not defend against: being included twice in one program (static helpers).
 */
#ifndef LMTP_TEST_H
#define LMTP_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakepeer.h"
#include "gw/lmtp.h"

#define HELO    "client.test"
#define UNUSED  __attribute__((unused))
#define GREET   "send 220 fake.test LMTP\n"
#define QUIT_OK "expect QUIT\nsend 221 bye\n"

UNUSED static fp_peer *start(const char *script)
{
	char err[256] = "";
	fp_opts o;
	fp_peer *p;

	memset(&o, 0, sizeof(o));
	o.script = script;
	o.timeout_ms = 3000;
	p = fp_start_opts(&o, err, sizeof(err));
	if (p == NULL)
		fail_msg("fp_start: %s", err);
	return p;
}

UNUSED static void hop_port(gw_nexthop *h, unsigned port)
{
	memset(h, 0, sizeof(*h));
	h->kind = GW_HOP_INET;
	h->literal = 1;
	h->port = port;
	snprintf(h->host, sizeof(h->host), "127.0.0.1");
}

UNUSED static gw_lmtp_opts lmtp_opts(gw_proto proto)
{
	gw_lmtp_opts o;

	memset(&o, 0, sizeof(o));
	o.client.proto = proto;
	o.client.helo_name = HELO;
	o.client.connect_timeout_ms = 2000;
	o.client.reply_timeout_ms = 2000;
	o.client.deadline_ms = 10000;
	return o;
}

UNUSED static gw_lmtp *new_lmtp(const gw_lmtp_opts *o)
{
	gw_lmtp *l = gw_lmtp_new(o);

	assert_non_null(l);
	return l;
}

/* Printable form of bytes for failure messages. */
UNUSED static void show(char *dst, size_t size, const char *s, size_t len)
{
	size_t o = 0, i;

	for (i = 0; i < len && o + 5 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\r')
			o += (size_t)snprintf(dst + o, size - o, "\\r");
		else if (ch == '\n')
			o += (size_t)snprintf(dst + o, size - o, "\\n");
		else if (ch < 0x20 || ch > 0x7e || ch == '\\')
			o += (size_t)snprintf(dst + o, size - o, "\\x%02x", ch);
		else
			dst[o++] = (char)ch;
	}
	dst[o < size ? o : size - 1] = '\0';
}

/* Connection i of the peer received exactly want. */
UNUSED static void check_received(fp_peer *p, unsigned i, const char *want)
{
	size_t len = 0, wlen = strlen(want), k, from;
	const char *got = fp_received(p, i, &len);
	char a[600], b[600];

	if (got == NULL)
		fail_msg("connection %u: no such connection", i);
	for (k = 0; k < len && k < wlen && got[k] == want[k]; k++)
		;
	if (k == wlen && len == wlen)
		return;
	from = k > 60 ? k - 60 : 0;
	show(a, sizeof(a), got + from, len - from > 160 ? 160 : len - from);
	show(b, sizeof(b), want + from, wlen - from > 160 ? 160 : wlen - from);
	fail_msg("connection %u: bytes differ at offset %zu (got %zu bytes, want %zu):\n got  \"%s\"\n want "
		 "\"%s\"",
		 i, k, len, wlen, a, b);
}

/* How many times needle occurs in connection i's bytes (0 if no such connection). */
UNUSED static unsigned count_in(fp_peer *p, unsigned i, const char *needle)
{
	const char *got = fp_received(p, i, NULL), *s;
	unsigned n = 0;

	for (s = got; s != NULL && (s = strstr(s, needle)) != NULL; s += strlen(needle))
		n++;
	return n;
}

/* Wait for the peer's scripts: they must have run to the end without a failure. */
UNUSED static void peer_done(fp_peer *p)
{
	if (fp_wait(p, 6000) != 0)
		fail_msg("fake peer: %s", fp_error(p) ? fp_error(p) : "scripts did not finish");
}

UNUSED static void check_result(const gw_lmtp_result *r, const char *what, gw_lmtp_state state,
				gw_lmtp_stage stage, int code, const char *enh)
{
	if (r->state != state || r->stage != stage || r->code != code ||
	    (enh != NULL && strcmp(r->enh, enh) != 0))
		fail_msg("%s: got %s/%s/%d/%s, want %s/%s/%d/%s (status %s, text \"%s\")", what,
			 gw_lmtp_state_str(r->state), gw_lmtp_stage_str(r->stage), r->code, r->enh,
			 gw_lmtp_state_str(state), gw_lmtp_stage_str(stage), code, enh != NULL ? enh : "*",
			 gw_status_str(r->status), r->text);
}

#endif
