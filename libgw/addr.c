/*
 * addr.c - RFC 5321 paths and ESMTP parameters (gw/addr.h).
 *
 * The whole input is first scanned for bytes that must never pass (NUL, CR,
 * LF, other controls, 8-bit without SMTPUTF8, invalid UTF-8 with it), so the
 * error names the real problem wherever it sits; then the path is parsed left
 * to right by the RFC 5321 grammar (RFC 6531 with GW_PATH_SMTPUTF8), each
 * piece checked against its limit as soon as it is read, and the parameters
 * are counted before any is parsed. Leading and trailing spaces and runs of
 * spaces between parameters are tolerated, as real clients send them.
 *
 * Does not defend against: domains that do not exist, IDNA (A-label and
 * U-label) validity, parameters that are syntactically fine but meaningless
 * for the command (NOTIFY on MAIL): the peer judges those. Error messages are
 * static, so they name the parameter only when it is a known one.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "gw/addr.h"

typedef struct cursor {
	const char *s;
	size_t len, pos;
	unsigned flags;
} cursor;

static int is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

static char to_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static char to_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* RFC 5322 atext; UTF-8 bytes count as atext under SMTPUTF8 (RFC 6531), already validated by the prescan. */
static int is_atext(unsigned char c, unsigned flags)
{
	if (c >= 0x80)
		return (flags & GW_PATH_SMTPUTF8) != 0;
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 if invalid (overlong, surrogate, above U+10FFFF,
 * truncated). */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t need, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

/* The bytes that are wrong wherever they appear. */
static const char *prescan(const char *s, size_t len, unsigned flags)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned char c = u[i];

		if (c == '\0')
			return "NUL in address";
		if (c == '\r')
			return "CR in address";
		if (c == '\n')
			return "LF in address";
		if (c < 0x20 || c == 0x7f)
			return "control character in address";
		if (c >= 0x80) {
			size_t n;

			if (!(flags & GW_PATH_SMTPUTF8))
				return "8-bit character in address without SMTPUTF8";
			n = utf8_seq_len(u + i, len - i);
			if (n == 0)
				return "invalid UTF-8 in address";
			i += n;
			continue;
		}
		i++;
	}
	return NULL;
}

static int at_end(const cursor *c)
{
	return c->pos >= c->len;
}

static unsigned char peek(const cursor *c)
{
	return at_end(c) ? 0 : (unsigned char)c->s[c->pos];
}

/*
 * Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str].
 * Stops at the first byte that cannot continue it. [start, pos) is the domain.
 */
static const char *parse_domain(cursor *c, int *utf8_r)
{
	size_t start = c->pos, label = 0, ascii_label = 1;
	unsigned char prev = 0;

	while (!at_end(c)) {
		unsigned char ch = peek(c);

		if (ch == '.') {
			if (label == 0)
				return c->pos == start ? "domain starts with a dot"
						       : "two dots in a row in domain";
			if (prev == '-')
				return "domain label ends with a hyphen";
			label = 0;
			ascii_label = 1;
		} else if (is_alnum(ch) || (ch >= 0x80 && (c->flags & GW_PATH_SMTPUTF8))) {
			label++;
			if (ch >= 0x80) {
				ascii_label = 0;
				*utf8_r = 1;
			}
		} else if (ch == '-') {
			if (label == 0)
				return "domain label starts with a hyphen";
			label++;
		} else {
			break;
		}
		/* DNS bounds ASCII labels; U-label length is measured after IDNA, which is not ours. */
		if (ascii_label && label > 63)
			return "domain label longer than 63 octets";
		if (c->pos - start + 1 > GW_DOMAIN_MAX)
			return "domain longer than 255 octets";
		prev = ch;
		c->pos++;
	}
	if (c->pos == start)
		return "missing domain";
	if (label == 0)
		return "domain ends with a dot";
	if (prev == '-')
		return "domain label ends with a hyphen";
	return NULL;
}

/* "[IPv4]" or "[IPv6:addr]"; the cursor is on '['. Other RFC 5321 tags are refused: no one routes them. */
static const char *parse_literal(cursor *c)
{
	size_t start = c->pos, i;
	char buf[64];
	unsigned char addr[16];
	const char *body;
	size_t blen;
	int ipv6 = 0;

	c->pos++;
	while (!at_end(c) && peek(c) != ']') {
		unsigned char ch = peek(c);

		/* dcontent: printable ASCII except "[", "\", "]". */
		if (ch < 33 || ch > 126 || ch == '[' || ch == '\\')
			return "invalid character in address literal";
		if (c->pos - start + 2 > GW_DOMAIN_MAX)
			return "domain longer than 255 octets";
		c->pos++;
	}
	if (at_end(c))
		return "unterminated address literal";
	body = c->s + start + 1;
	blen = c->pos - start - 1;
	c->pos++;
	if (blen == 0)
		return "empty address literal";
	if (blen >= 5 && strncasecmp(body, "IPv6:", 5) == 0) {
		ipv6 = 1;
		body += 5;
		blen -= 5;
	} else {
		for (i = 0; i < blen; i++)
			if (body[i] == ':')
				return "unsupported address literal";
	}
	if (blen == 0 || blen >= sizeof buf)
		return ipv6 ? "invalid IPv6 address literal" : "invalid IPv4 address literal";
	memcpy(buf, body, blen);
	buf[blen] = '\0';
	if (inet_pton(ipv6 ? AF_INET6 : AF_INET, buf, addr) != 1)
		return ipv6 ? "invalid IPv6 address literal" : "invalid IPv4 address literal";
	return NULL;
}

/* Copy the domain [start, end), lower case, with the literal tag spelled "IPv6:" whatever the input's case.
 */
static void store_domain(gw_mailbox *mb, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		mb->domain[i] = to_lower(s[i]);
	mb->domain[n] = '\0';
	if (mb->literal && n > 6 && strncmp(mb->domain, "[ipv6:", 6) == 0)
		memcpy(mb->domain + 1, "IPv6", 4);
}

/* Dot-string or Quoted-string; the local part is [start, pos). */
static const char *parse_local(cursor *c, int *quoted_r, int *utf8_r)
{
	size_t start = c->pos;

	if (peek(c) == '"') {
		*quoted_r = 1;
		c->pos++;
		for (;;) {
			unsigned char ch;

			if (at_end(c))
				return "unterminated quoted string in local part";
			ch = peek(c);
			if (ch == '"')
				break;
			if (ch == '\\') {
				c->pos++;
				if (at_end(c))
					return "unterminated quoted string in local part";
				ch = peek(c);
				if (ch < 32 || ch > 126)
					return "invalid quoted pair in local part";
			} else if (ch >= 0x80) {
				*utf8_r = 1; /* allowed: the prescan refused it without SMTPUTF8 */
			} else if (ch < 32 || ch > 126) {
				return "invalid character in quoted string";
			}
			c->pos++;
			if (c->pos - start > GW_LOCAL_MAX)
				return "local part longer than 64 octets";
		}
		c->pos++;
		if (c->pos - start > GW_LOCAL_MAX)
			return "local part longer than 64 octets";
		return NULL;
	}
	*quoted_r = 0;
	while (!at_end(c)) {
		unsigned char ch = peek(c);

		if (ch == '.') {
			if (c->pos == start)
				return "local part starts with a dot";
			if (c->s[c->pos - 1] == '.')
				return "two dots in a row in local part";
		} else if (is_atext(ch, c->flags)) {
			if (ch >= 0x80)
				*utf8_r = 1;
		} else {
			break;
		}
		c->pos++;
		if (c->pos - start > GW_LOCAL_MAX)
			return "local part longer than 64 octets";
	}
	if (c->pos == start)
		return "empty local part";
	if (c->s[c->pos - 1] == '.')
		return "local part ends with a dot";
	return NULL;
}

/* Mailbox = Local-part "@" (Domain / address-literal), ended by ">" (bracketed) or space / end (bare). */
static const char *parse_mailbox(cursor *c, gw_mailbox *mb, int bracketed)
{
	size_t start = c->pos, dstart;
	const char *err;
	unsigned char ch;

	if (peek(c) == '@' || (bracketed && peek(c) == '>') || (!bracketed && (at_end(c) || peek(c) == ' ')))
		return "empty local part";
	err = parse_local(c, &mb->quoted, &mb->utf8);
	if (err != NULL)
		return err;
	memcpy(mb->local, c->s + start, c->pos - start);
	mb->local[c->pos - start] = '\0';
	ch = peek(c);
	if (bracketed && at_end(c))
		return "missing > at end of path";
	if ((bracketed && ch == '>') || (!bracketed && (at_end(c) || ch == ' '))) {
		if ((c->flags & GW_PATH_POSTMASTER) && !mb->quoted &&
		    strcasecmp(mb->local, "postmaster") == 0)
			return NULL;
		return "missing @ in address";
	}
	if (ch != '@')
		return mb->quoted ? "invalid character after quoted local part"
				  : "invalid character in local part";
	c->pos++;
	dstart = c->pos;
	if (peek(c) == '[') {
		mb->literal = 1;
		err = parse_literal(c);
	} else {
		err = parse_domain(c, &mb->utf8);
	}
	if (err != NULL)
		return err;
	store_domain(mb, c->s + dstart, c->pos - dstart);
	if (at_end(c))
		return bracketed ? "missing > at end of path" : NULL;
	ch = peek(c);
	if (bracketed && ch != '>')
		return mb->literal ? "unexpected character after address literal"
				   : "invalid character in domain";
	if (!bracketed && ch != ' ')
		return mb->literal ? "unexpected character after address literal"
				   : "invalid character in domain";
	return NULL;
}

/* A-d-l ":" (RFC 5321 source route): checked, then forgotten, as 4.1.1.3 asks. */
static const char *skip_source_route(cursor *c)
{
	int utf8 = 0;

	for (;;) {
		const char *err;

		if (peek(c) != '@')
			return "invalid source route";
		c->pos++;
		err = parse_domain(c, &utf8);
		if (err != NULL)
			return "invalid domain in source route";
		if (peek(c) == '>')
			return "empty local part"; /* "<@example.com>": not a route, a missing local part */
		if (peek(c) == ',') {
			c->pos++;
			continue;
		}
		if (peek(c) == ':') {
			c->pos++;
			return NULL;
		}
		return "invalid source route";
	}
}

static int is_hex_upper(char c)
{
	return is_digit((unsigned char)c) || (c >= 'A' && c <= 'F');
}

/* xtext (RFC 3461): printable ASCII except "+" and "=", or "+" and two upper-case hex digits. */
static int is_xtext(const char *v, size_t n, unsigned flags)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (ch == '+') {
			if (n - i < 3 || !is_hex_upper(v[i + 1]) || !is_hex_upper(v[i + 2]))
				return 0;
			i += 2;
		} else if (ch >= 0x80) {
			if (!(flags & GW_PATH_SMTPUTF8))
				return 0;
		} else if (ch < 33 || ch > 126 || ch == '=') {
			return 0;
		}
	}
	return 1;
}

static int word_is(const char *v, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(v, w, n) == 0;
}

/* Check a parameter against its RFC; NULL if fine, else why not (unknown keywords are refused too). */
static const char *check_param(const gw_param *pm, unsigned flags)
{
	const char *k = pm->keyword, *v = pm->value;
	size_t n = strlen(v), i;

	if (strcmp(k, "SIZE") == 0) {
		if (!pm->has_value)
			return "SIZE needs a value";
		if (n > 20)
			return "SIZE value too long";
		for (i = 0; i < n; i++)
			if (!is_digit((unsigned char)v[i]))
				return "SIZE value not a number";
		return NULL;
	}
	if (strcmp(k, "BODY") == 0) {
		if (!pm->has_value)
			return "BODY needs a value";
		if (word_is(v, n, "7BIT") || word_is(v, n, "8BITMIME") || word_is(v, n, "BINARYMIME"))
			return NULL;
		return "invalid BODY value";
	}
	if (strcmp(k, "SMTPUTF8") == 0)
		return pm->has_value ? "SMTPUTF8 takes no value" : NULL;
	if (strcmp(k, "NOTIFY") == 0) {
		unsigned seen = 0;
		size_t s = 0;

		if (!pm->has_value)
			return "NOTIFY needs a value";
		while (s <= n) {
			size_t e = s;
			unsigned bit;

			while (e < n && v[e] != ',')
				e++;
			if (word_is(v + s, e - s, "NEVER"))
				bit = 1;
			else if (word_is(v + s, e - s, "SUCCESS"))
				bit = 2;
			else if (word_is(v + s, e - s, "FAILURE"))
				bit = 4;
			else if (word_is(v + s, e - s, "DELAY"))
				bit = 8;
			else
				return "invalid NOTIFY value";
			if (seen & bit)
				return "NOTIFY value repeated";
			seen |= bit;
			s = e + 1;
		}
		if ((seen & 1) && seen != 1)
			return "NOTIFY=NEVER cannot be combined";
		return NULL;
	}
	if (strcmp(k, "ORCPT") == 0) {
		const char *semi;

		if (!pm->has_value)
			return "ORCPT needs a value";
		semi = memchr(v, ';', n);
		if (semi == NULL || semi == v)
			return "ORCPT needs addr-type;address";
		for (i = 0; v + i < semi; i++)
			if (!is_atext((unsigned char)v[i], 0))
				return "invalid ORCPT address type";
		if (semi + 1 == v + n)
			return "empty ORCPT address";
		if (!is_xtext(semi + 1, (size_t)(v + n - semi - 1), flags))
			return "invalid xtext in ORCPT";
		return NULL;
	}
	if (strcmp(k, "RET") == 0) {
		if (!pm->has_value)
			return "RET needs a value";
		if (word_is(v, n, "FULL") || word_is(v, n, "HDRS"))
			return NULL;
		return "invalid RET value";
	}
	if (strcmp(k, "ENVID") == 0) {
		if (!pm->has_value)
			return "ENVID needs a value";
		if (n > 100)
			return "ENVID longer than 100 characters";
		if (!is_xtext(v, n, flags))
			return "invalid xtext in ENVID";
		return NULL;
	}
	return "unknown parameter";
}

static const char *duplicate_msg(const char *k)
{
	static const char *const names[] = {"SIZE", "BODY", "SMTPUTF8", "NOTIFY", "ORCPT", "RET", "ENVID"};
	static const char *const msgs[] = {"duplicate parameter SIZE",     "duplicate parameter BODY",
					   "duplicate parameter SMTPUTF8", "duplicate parameter NOTIFY",
					   "duplicate parameter ORCPT",    "duplicate parameter RET",
					   "duplicate parameter ENVID"};
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(k, names[i]) == 0)
			return msgs[i];
	return "duplicate parameter";
}

/* Mail-parameters / Rcpt-parameters: esmtp-param *(SP esmtp-param). The cursor is just past the path. */
static const char *parse_params(cursor *c, gw_path *path)
{
	size_t i, ntok = 0;

	/* Count first, so a flood of parameters costs nothing to refuse. */
	for (i = c->pos; i < c->len; i++)
		if (c->s[i] != ' ' && (i == c->pos || c->s[i - 1] == ' '))
			ntok++;
	if (ntok == 0)
		return NULL;
	if (!(c->flags & GW_PATH_PARAMS))
		return "unexpected text after address";
	if (ntok > GW_PARAMS_MAX)
		return "too many parameters";
	while (!at_end(c)) {
		gw_param *pm;
		size_t ks, vs, j;
		const char *err;

		while (!at_end(c) && peek(c) == ' ')
			c->pos++;
		if (at_end(c))
			break;
		pm = &path->params[path->nparams];
		ks = c->pos;
		if (!is_alnum(peek(c)))
			return "invalid parameter keyword";
		while (!at_end(c) && (is_alnum(peek(c)) || peek(c) == '-'))
			c->pos++;
		if (!at_end(c) && peek(c) != ' ' && peek(c) != '=')
			return "invalid parameter keyword";
		if (c->pos - ks > GW_PARAM_KEY_MAX)
			return "parameter keyword too long";
		for (j = ks; j < c->pos; j++)
			pm->keyword[j - ks] = to_upper(c->s[j]);
		pm->keyword[c->pos - ks] = '\0';
		if (peek(c) == '=' && !at_end(c)) {
			c->pos++;
			vs = c->pos;
			while (!at_end(c) && peek(c) != ' ') {
				unsigned char ch = peek(c);

				/* esmtp-value: CHAR except "=", SP and controls; UTF-8 under SMTPUTF8 (RFC
				 * 6531 3.3). */
				if (ch == '=' || (ch < 0x80 && (ch < 33 || ch > 126)))
					return "invalid character in parameter value";
				if (c->pos - vs + 1 > GW_PARAM_VALUE_MAX)
					return "parameter value longer than 500 octets";
				c->pos++;
			}
			if (c->pos == vs)
				return "empty parameter value";
			memcpy(pm->value, c->s + vs, c->pos - vs);
			pm->value[c->pos - vs] = '\0';
			pm->has_value = 1;
		}
		for (j = 0; j < path->nparams; j++)
			if (strcmp(path->params[j].keyword, pm->keyword) == 0)
				return duplicate_msg(pm->keyword);
		err = check_param(pm, c->flags);
		if (err != NULL)
			return err;
		path->nparams++;
	}
	return NULL;
}

int gw_path_parse(const char *s, size_t len, unsigned flags, gw_path *path_r, const char **error_r)
{
	const char *dummy, *err;
	cursor c = {s, len, 0, flags};
	int bracketed;
	size_t pstart, plen;

	if (error_r == NULL)
		error_r = &dummy;
	memset(path_r, 0, sizeof *path_r);
	if (s == NULL && len > 0) {
		*error_r = "no address";
		return -1;
	}
	err = prescan(s, len, flags);
	if (err != NULL)
		goto fail;
	while (!at_end(&c) && peek(&c) == ' ')
		c.pos++;
	if (at_end(&c)) {
		err = "empty address";
		goto fail;
	}
	pstart = c.pos;
	bracketed = peek(&c) == '<';
	if (!bracketed && !(flags & GW_PATH_BARE)) {
		err = "missing < before address";
		goto fail;
	}
	if (bracketed) {
		c.pos++;
		if (peek(&c) == '>') {
			if (!(flags & GW_PATH_REVERSE)) {
				err = "null path not allowed here";
				goto fail;
			}
			path_r->mbox.null = 1;
			c.pos++;
			goto params;
		}
		if (peek(&c) == '@') {
			err = skip_source_route(&c);
			if (err != NULL)
				goto fail;
		}
	}
	err = parse_mailbox(&c, &path_r->mbox, bracketed);
	if (err != NULL)
		goto fail;
	if (bracketed)
		c.pos++;
	plen = c.pos - pstart + (bracketed ? 0 : 2);
	if (plen > GW_PATH_MAX) {
		err = "path longer than 256 octets";
		goto fail;
	}
params:
	if (!at_end(&c) && peek(&c) != ' ') {
		err = "unexpected text after address";
		goto fail;
	}
	err = parse_params(&c, path_r);
	if (err != NULL)
		goto fail;
	return 0;
fail:
	*error_r = err;
	memset(path_r, 0, sizeof *path_r);
	return -1;
}

size_t gw_mailbox_format(const gw_mailbox *mb, char *buf, size_t size)
{
	size_t ll, dl, need, n;

	if (mb->null) {
		if (size > 0)
			buf[0] = '\0';
		return 0;
	}
	ll = strnlen(mb->local, sizeof mb->local);
	dl = strnlen(mb->domain, sizeof mb->domain);
	need = ll + (dl > 0 ? 1 + dl : 0);
	if (size == 0)
		return need;
	n = ll < size - 1 ? ll : size - 1;
	memcpy(buf, mb->local, n);
	if (dl > 0 && n < size - 1) {
		buf[n++] = '@';
		dl = dl < size - 1 - n ? dl : size - 1 - n;
		memcpy(buf + n, mb->domain, dl);
		n += dl;
	}
	buf[n] = '\0';
	return need;
}

const gw_param *gw_path_param(const gw_path *p, const char *keyword)
{
	size_t i;

	if (p == NULL || keyword == NULL)
		return NULL;
	for (i = 0; i < p->nparams && i < GW_PARAMS_MAX; i++)
		if (strcasecmp(p->params[i].keyword, keyword) == 0)
			return &p->params[i];
	return NULL;
}
