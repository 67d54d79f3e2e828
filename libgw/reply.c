/*
 * reply.c - incremental SMTP/LMTP reply parser (gw/reply.h).
 *
 * Bytes are checked as they arrive (so a reply split anywhere gives the same
 * result as one read whole) and gathered into one bounded line buffer; each
 * complete line is then checked for its code, separator and enhanced status
 * code, and its text appended to the reply under construction. The first
 * error wins and sticks until gw_reply_parser_reset().
 *
 * Limits: max_line bytes per line (line ending included), max_reply bytes per
 * reply (all lines, endings included); text is bounded by GW_REPLY_TEXT_MAX.
 *
 * Does not defend against: a peer that sends valid replies forever, or one
 * that trickles bytes; callers bound both with timeouts. Text is checked for
 * control bytes but not sanitised for any particular consumer: whoever
 * echoes it elsewhere (milter replies, logs) must still escape it.
 */
#include <string.h>

#include "gw/reply.h"

static const char err_reset[] = "parser must be reset after an error";

void gw_reply_parser_init(gw_reply_parser *p, size_t max_line, size_t max_reply)
{
	if (max_line == 0 || max_line > GW_REPLY_LINE_MAX)
		max_line = GW_REPLY_LINE_MAX;
	if (max_reply == 0 || max_reply > GW_REPLY_TEXT_MAX)
		max_reply = GW_REPLY_TEXT_MAX;
	p->max_line = max_line;
	p->max_reply = max_reply;
	gw_reply_parser_reset(p);
}

/* Start a new reply; the 4 KB text buffer is not wiped, only its length. */
static void reply_clear(gw_reply *r)
{
	r->code = 0;
	r->enh[0] = '\0';
	r->nlines = 0;
	r->text_len = 0;
	r->text[0] = '\0';
}

void gw_reply_parser_reset(gw_reply_parser *p)
{
	p->line_len = 0;
	p->reply_bytes = 0;
	p->failed = 0;
	reply_clear(&p->cur);
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Length of an RFC 3463 enhanced status code of class cls at the start of
 * t[0..n), followed by a space or the end of the text; 0 if there is none.
 * A code of another class is left in the text: it is not ours to trust.
 */
static size_t enh_code_len(const char *t, size_t n, char cls)
{
	size_t i = 0, part, digits;

	if (n < 5 || t[0] != cls || t[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		digits = 0;
		while (i < n && digits < 4 && is_digit((unsigned char)t[i])) {
			i++;
			digits++;
		}
		if (digits == 0 || digits > 3)
			return 0;
		if (part == 0) {
			if (i >= n || t[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && t[i] != ' ')
		return 0;
	return i;
}

/* Check one complete line (ending already removed); 1 if it ended the reply, 0 if more lines follow, -1 on
 * error. */
static int take_line(gw_reply_parser *p, const char *l, size_t n, const char **error_r)
{
	gw_reply *r = &p->cur;
	int code, last;
	const char *t;
	size_t tn, el;

	if (n < 3 || !is_digit((unsigned char)l[0]) || !is_digit((unsigned char)l[1]) ||
	    !is_digit((unsigned char)l[2])) {
		*error_r = "malformed reply code";
		return -1;
	}
	if (l[0] < '2' || l[0] > '5' || l[1] > '5') {
		*error_r = "reply code out of range";
		return -1;
	}
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (n == 3) {
		last = 1;
	} else if (l[3] == ' ') {
		last = 1;
	} else if (l[3] == '-') {
		last = 0;
	} else {
		*error_r = "bad separator after reply code";
		return -1;
	}
	if (r->nlines > 0 && code != r->code) {
		*error_r = "reply codes differ between lines";
		return -1;
	}
	t = n > 4 ? l + 4 : l + n;
	tn = n > 4 ? n - 4 : 0;
	el = enh_code_len(t, tn, l[0]);
	if (el > 0) {
		if (r->nlines == 0) {
			memcpy(r->enh, t, el);
			r->enh[el] = '\0';
		}
		t += el;
		tn -= el;
		if (tn > 0) {
			t++;
			tn--;
		}
	}
	/* Cannot trigger while max_reply <= GW_REPLY_TEXT_MAX (text is shorter than the raw lines), but the
	 * buffer is not ours to overrun. */
	if (r->text_len + (r->nlines > 0) + tn + 1 > sizeof r->text) {
		*error_r = "reply too long";
		return -1;
	}
	if (r->nlines > 0)
		r->text[r->text_len++] = '\n';
	memcpy(r->text + r->text_len, t, tn);
	r->text_len += tn;
	r->text[r->text_len] = '\0';
	r->code = code;
	r->nlines++;
	return last;
}

static void reply_copy(gw_reply *dst, const gw_reply *src)
{
	dst->code = src->code;
	memcpy(dst->enh, src->enh, sizeof dst->enh);
	dst->nlines = src->nlines;
	dst->text_len = src->text_len;
	memcpy(dst->text, src->text, src->text_len + 1);
}

int gw_reply_parse(gw_reply_parser *p, const char *data, size_t len, size_t *used_r, gw_reply *reply_r,
		   const char **error_r)
{
	const char *dummy_err;
	size_t dummy_used, i;

	if (error_r == NULL)
		error_r = &dummy_err;
	if (used_r == NULL)
		used_r = &dummy_used;
	*used_r = 0;
	if (p->failed) {
		*error_r = err_reset;
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c;
		const char *err = NULL;

		/*
		 * Fast path: copy a run of printable bytes that the checks below
		 * would all let through; anything else takes the byte-wise path,
		 * so the outcome does not depend on where a run was cut.
		 */
		if (p->line_len == 0 || p->line[p->line_len - 1] != '\r') {
			size_t max = len - i, k = 0;
			size_t room_line = p->max_line - 1 - p->line_len;
			size_t room_reply = p->max_reply - p->reply_bytes;

			if (max > room_line)
				max = room_line;
			if (max > room_reply)
				max = room_reply;
			while (k < max && (unsigned char)data[i + k] >= 0x20 &&
			       (unsigned char)data[i + k] != 0x7f)
				k++;
			if (k > 0) {
				memcpy(p->line + p->line_len, data + i, k);
				p->line_len += k;
				p->reply_bytes += k;
				i += k;
				if (i == len)
					break;
			}
		}
		c = (unsigned char)data[i];

		if (p->reply_bytes + 1 > p->max_reply) {
			err = "reply too long";
		} else if (c == '\n') {
			size_t n = p->line_len;
			int rc;

			if (n > 0 && p->line[n - 1] == '\r')
				n--;
			p->reply_bytes++;
			rc = take_line(p, p->line, n, &err);
			p->line_len = 0;
			if (rc == 1) {
				reply_copy(reply_r, &p->cur);
				reply_clear(&p->cur);
				p->reply_bytes = 0;
				*used_r = i + 1;
				return 1;
			}
		} else if (p->line_len + 2 > p->max_line) {
			err = "line too long";
		} else if (p->line_len > 0 && p->line[p->line_len - 1] == '\r') {
			err = "CR not followed by LF";
		} else if (c == '\0') {
			err = "NUL in reply";
		} else if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
			err = "control character in reply";
		} else {
			p->line[p->line_len++] = (char)c;
			p->reply_bytes++;
		}
		if (err != NULL) {
			p->failed = 1;
			*error_r = err;
			*used_r = i + 1;
			return -1;
		}
	}
	*used_r = len;
	return 0;
}

static int ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/*
 * The first line of an EHLO reply is the server's name and greeting, never a
 * keyword (RFC 5321 4.1.1.1), so it is skipped: a server called "SIZE" must
 * not look like it offers SIZE. The old "AUTH=LOGIN" form is accepted too.
 */
int gw_reply_has_keyword(const gw_reply *r, const char *keyword, const char **arg_r, size_t *arglen_r)
{
	size_t klen, pos, end;
	const char *text;

	if (arg_r != NULL)
		*arg_r = NULL;
	if (arglen_r != NULL)
		*arglen_r = 0;
	if (r == NULL || keyword == NULL || r->nlines < 2)
		return 0;
	klen = strlen(keyword);
	if (klen == 0)
		return 0;
	text = r->text;
	end = r->text_len < sizeof r->text ? r->text_len : sizeof r->text - 1;
	pos = 0;
	while (pos < end && text[pos] != '\n')
		pos++;
	while (pos < end) {
		size_t ls = pos + 1, le = ls, k;

		while (le < end && text[le] != '\n')
			le++;
		pos = le;
		if (le - ls < klen)
			continue;
		for (k = 0; k < klen; k++)
			if (ascii_lower((unsigned char)text[ls + k]) !=
			    ascii_lower((unsigned char)keyword[k]))
				break;
		if (k < klen)
			continue;
		k = ls + klen;
		if (k < le && text[k] != ' ' && text[k] != '=')
			continue;
		if (k < le) {
			size_t as = k + 1, ae = le;

			while (as < ae && text[as] == ' ')
				as++;
			while (ae > as && (text[ae - 1] == ' ' || text[ae - 1] == '\t'))
				ae--;
			if (ae > as) {
				if (arg_r != NULL)
					*arg_r = text + as;
				if (arglen_r != NULL)
					*arglen_r = ae - as;
			}
		}
		return 1;
	}
	return 0;
}
