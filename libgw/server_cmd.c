/*
 * server_cmd.c - the server engine's command parser: verbs, MAIL/RCPT arguments, BDAT arguments.
 *
 * Verbs are matched case-insensitively and must be followed by a space or
 * the end of the line. MAIL FROM:/RCPT TO: take spaces after the colon and a
 * path without angle brackets, as real clients send them (Postfix's
 * strict_rfc821_envelopes = no); the path and its ESMTP parameters are
 * parsed by gw/addr.h, after AUTH= (RFC 4954, which gw/addr.h does not know)
 * has been taken out and checked here as xtext. A parameter is then checked
 * against the command and what the session advertised. Reply texts name the
 * parser's static message, never client bytes.
 *
 * Does not defend against: meaning. An AUTH= mailbox is not decoded; a
 * SIZE= is only compared with the limit.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "server_int.h"

static const struct {
	const char *name;
	gws_verb verb;
} verbs[] = {
    {"HELO", SRV_V_HELO},          {"EHLO", SRV_V_EHLO},          {"LHLO", SRV_V_LHLO},
    {"MAIL", SRV_V_MAIL},          {"RCPT", SRV_V_RCPT},          {"DATA", SRV_V_DATA},
    {"BDAT", SRV_V_BDAT},          {"RSET", SRV_V_RSET},          {"NOOP", SRV_V_NOOP},
    {"QUIT", SRV_V_QUIT},          {"VRFY", SRV_V_VRFY},          {"HELP", SRV_V_HELP},
    {"STARTTLS", SRV_V_STARTTLS},  {"EXPN", SRV_V_UNIMPLEMENTED}, {"TURN", SRV_V_UNIMPLEMENTED},
    {"ETRN", SRV_V_UNIMPLEMENTED}, {"ATRN", SRV_V_UNIMPLEMENTED}, {"AUTH", SRV_V_UNIMPLEMENTED},
    {"SEND", SRV_V_UNIMPLEMENTED}, {"SOML", SRV_V_UNIMPLEMENTED}, {"SAML", SRV_V_UNIMPLEMENTED},
};

gws_verb gws_cmd_verb(const char *line, size_t len, size_t *argpos_r)
{
	char up[8];
	size_t n = 0, i;

	while (n < len && line[n] != ' ')
		n++;
	*argpos_r = n < len ? n + 1 : n;
	if (n != 4 && n != 8)
		return SRV_V_UNKNOWN;
	/* Upper-case once, then compare bytes: this runs for every command of every session. */
	for (i = 0; i < n; i++)
		up[i] = line[i] >= 'a' && line[i] <= 'z' ? (char)(line[i] - 'a' + 'A') : line[i];
	for (i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (strlen(verbs[i].name) == n && memcmp(up, verbs[i].name, n) == 0)
			return verbs[i].verb;
	return SRV_V_UNKNOWN;
}

int gws_has_8bit(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/* End of the path at s[0..len): past the '>' that closes it (quoted strings skipped), or the first space. */
static size_t path_end(const char *s, size_t len)
{
	size_t i = 0;
	int quoted = 0;

	if (len == 0 || s[0] != '<') {
		while (i < len && s[i] != ' ')
			i++;
		return i;
	}
	for (i = 1; i < len; i++) {
		if (quoted && s[i] == '\\' && i + 1 < len)
			i++;
		else if (s[i] == '"')
			quoted = !quoted;
		else if (!quoted && s[i] == '>')
			return i + 1;
	}
	return len;
}

static int is_hex_upper(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* RFC 4954 5: AUTH=<> or AUTH=xtext (RFC 3461: "+XX" escapes, no '=' or controls). */
static int auth_value_ok(const char *v, size_t n)
{
	size_t i;

	if (n == 2 && v[0] == '<' && v[1] == '>')
		return 1;
	if (n == 0 || n > SRV_AUTH_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == '+') {
			if (n - i < 3 || !is_hex_upper(v[i + 1]) || !is_hex_upper(v[i + 2]))
				return 0;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return 0;
		}
	}
	return 1;
}

#define FAIL(c, e, t)                                                                                        \
	do {                                                                                                 \
		*code_r = (c);                                                                               \
		*enh_r = (e);                                                                                \
		*text_r = (t);                                                                               \
		return -1;                                                                                   \
	} while (0)

/* Is a parameter the path parser accepted also right for this command and session? NULL if so. */
static const char *param_refused(const gw_srv *s, const gw_param *pm, int is_mail)
{
	const char *k = pm->keyword;
	unsigned caps = s->cfg.caps;

	if (strcmp(k, "NOTIFY") == 0 || strcmp(k, "ORCPT") == 0) {
		if (is_mail)
			return "Error: NOTIFY and ORCPT belong to RCPT";
		return caps & GW_SRV_CAP_DSN ? NULL : "Error: DSN not offered";
	}
	if (!is_mail)
		return "Error: parameter not valid for RCPT";
	if (strcmp(k, "SIZE") == 0)
		return caps & GW_SRV_CAP_SIZE ? NULL : "Error: SIZE not offered";
	if (strcmp(k, "SMTPUTF8") == 0)
		return caps & GW_SRV_CAP_SMTPUTF8 ? NULL : "Error: SMTPUTF8 not offered";
	if (strcmp(k, "RET") == 0 || strcmp(k, "ENVID") == 0)
		return caps & GW_SRV_CAP_DSN ? NULL : "Error: DSN not offered";
	if (strcmp(k, "BODY") == 0) {
		if (strcasecmp(pm->value, "BINARYMIME") == 0)
			return caps & GW_SRV_CAP_BINARYMIME ? NULL : "Error: BINARYMIME not offered";
		return caps & GW_SRV_CAP_8BITMIME ? NULL : "Error: 8BITMIME not offered";
	}
	return "Error: unsupported parameter";
}

static int is_param_error(const char *err)
{
	static const char *const words[] = {"parameter", "SIZE", "BODY",  "SMTPUTF8", "NOTIFY",
					    "ORCPT",     "RET",  "ENVID", "xtext"};
	size_t i;

	for (i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strstr(err, words[i]) != NULL)
			return 1;
	return 0;
}

static uint64_t parse_u64_sat(const char *v)
{
	uint64_t n = 0;

	for (; *v >= '0' && *v <= '9'; v++) {
		if (n > (UINT64_MAX - 9) / 10)
			return UINT64_MAX;
		n = n * 10 + (uint64_t)(*v - '0');
	}
	return n;
}

int gws_cmd_path(gw_srv *s, const char *args, size_t len, int is_mail, int *code_r, const char **enh_r,
		 const char **text_r)
{
	const char *kw = is_mail ? "FROM:" : "TO:";
	size_t kl = strlen(kw), pos, pe, out = 0, i;
	unsigned flags = GW_PATH_PARAMS | GW_PATH_BARE;
	const char *err;
	const gw_param *pm;

	if (len < kl || strncasecmp(args, kw, kl) != 0) {
		if (is_mail)
			FAIL(501, "5.5.4", "Syntax: MAIL FROM:<address>");
		FAIL(501, "5.5.4", "Syntax: RCPT TO:<address>");
	}
	pos = kl;
	while (pos < len && args[pos] == ' ')
		pos++;
	pe = pos + path_end(args + pos, len - pos);
	if (pe < len && args[pe] != ' ') {
		snprintf(s->errtext, sizeof s->errtext,
			 "Bad %s address syntax: unexpected text after address",
			 is_mail ? "sender" : "recipient");
		FAIL(501, is_mail ? "5.1.7" : "5.1.3", s->errtext);
	}
	/* The scratch buffer holds max_line bytes, and this is a command line shorter than that. */
	memcpy(s->scratch, args + pos, pe - pos);
	out = pe - pos;
	s->has_auth = 0;
	i = pe;
	while (i < len) {
		size_t ts, te;

		while (i < len && args[i] == ' ')
			i++;
		if (i >= len)
			break;
		ts = i;
		while (i < len && args[i] != ' ')
			i++;
		te = i;
		if (te - ts >= 4 && strncasecmp(args + ts, "AUTH", 4) == 0 &&
		    (te - ts == 4 || args[ts + 4] == '=')) {
			if (!is_mail || !(s->cfg.caps & GW_SRV_CAP_AUTH_PARAM))
				FAIL(555, "5.5.4", "Error: AUTH parameter not supported");
			if (s->has_auth)
				FAIL(501, "5.5.4", "Error: duplicate parameter AUTH");
			if (te - ts < 5 || !auth_value_ok(args + ts + 5, te - ts - 5))
				FAIL(501, "5.5.4", "Error: invalid AUTH value");
			memcpy(s->auth, args + ts + 5, te - ts - 5);
			s->auth[te - ts - 5] = '\0';
			s->has_auth = 1;
			continue;
		}
		s->scratch[out++] = ' ';
		memcpy(s->scratch + out, args + ts, te - ts);
		out += te - ts;
	}
	if (is_mail)
		flags |= GW_PATH_REVERSE | (s->cfg.caps & GW_SRV_CAP_SMTPUTF8 ? GW_PATH_SMTPUTF8 : 0);
	else
		/* behind a MAIL still unanswered (look-ahead), that MAIL's SMTPUTF8 */
		flags |= GW_PATH_POSTMASTER | ((s->mail ? s->utf8 : s->pend_utf8) ? GW_PATH_SMTPUTF8 : 0);
	if (gw_path_parse(s->scratch, out, flags, &s->path, &err) < 0) {
		if (strcmp(err, "unknown parameter") == 0)
			FAIL(555, "5.5.4", "Error: unsupported parameter");
		if (strncmp(err, "8-bit", 5) == 0)
			FAIL(553, "5.6.7", "Error: non-ASCII address needs SMTPUTF8");
		if (is_param_error(err)) {
			snprintf(s->errtext, sizeof s->errtext, "Error: %s", err);
			FAIL(501, "5.5.4", s->errtext);
		}
		snprintf(s->errtext, sizeof s->errtext, "Bad %s address syntax: %s",
			 is_mail ? "sender" : "recipient", err);
		FAIL(501, is_mail ? "5.1.7" : "5.1.3", s->errtext);
	}
	for (i = 0; i < s->path.nparams; i++) {
		const char *why = param_refused(s, &s->path.params[i], is_mail);

		if (why != NULL)
			FAIL(555, "5.5.4", why);
	}
	if (is_mail && s->path.mbox.utf8 && gw_path_param(&s->path, "SMTPUTF8") == NULL)
		FAIL(553, "5.6.7", "Error: non-ASCII address needs SMTPUTF8");
	s->declared_size = 0;
	if (is_mail && (pm = gw_path_param(&s->path, "SIZE")) != NULL) {
		s->declared_size = parse_u64_sat(pm->value);
		if (s->cfg.max_size != 0 && s->declared_size > s->cfg.max_size)
			FAIL(552, "5.3.4", "Error: message size exceeds fixed limit");
	}
	return 0;
}

int gws_cmd_bdat(const char *args, size_t len, uint64_t *size_r, int *last_r)
{
	size_t i = 0, d = 0;
	uint64_t n = 0;

	while (i < len && args[i] >= '0' && args[i] <= '9') {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(args[i] - '0');
		i++;
		d++;
	}
	if (d == 0)
		return -1;
	*size_r = n;
	*last_r = 0;
	while (i < len && args[i] == ' ')
		i++;
	if (i == len)
		return 0;
	if (len - i < 4 || strncasecmp(args + i, "LAST", 4) != 0)
		return -1;
	i += 4;
	while (i < len && args[i] == ' ')
		i++;
	if (i != len)
		return -1;
	*last_r = 1;
	return 0;
}
