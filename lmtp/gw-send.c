/*
 * gw-send - deliver one message to its recipients through an ordered list of
 * gateways over LMTP (or SMTP), printing one result line per recipient.
 *
 *   gw-send [--lmtp|--smtp] [--json] -f SENDER -g NEXTHOP [-g NEXTHOP ...]
 *           [-m FILE] [options] RECIPIENT...
 *
 * The message comes from FILE or standard input; input that cannot be
 * rewound (a pipe) is spooled to an unlinked temporary file first, so a
 * large message is never held in memory and every gateway gets the same
 * bytes. Exit status follows sysexits(3) as Sendmail and Postfix pipe(8)
 * read it: 0 every recipient delivered; 75 (EX_TEMPFAIL) any recipient left
 * temporarily failed or uncertain; 67 (EX_NOUSER) every failure is a 5.1.x
 * address failure; 65 (EX_DATAERR) the message was refused unsent (a NUL
 * byte); 69 (EX_UNAVAILABLE) other permanent failures; 64 usage;
 * 66 the message cannot be read; 74 spooling failed.
 *
 * Host names given to -g are looked up within the connect timeout, through
 * the --dns-server list or /etc/resolv.conf.
 *
 * Does not defend against: a message that changes on disk while it is sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "gw/dns.h"
#include "gw/log.h"
#include "gw/lmtp.h"

#define HOPS_MAX 64

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: gw-send [--lmtp|--smtp] [--json] -f SENDER -g NEXTHOP [-g NEXTHOP ...] [-m FILE]\n"
	    "               [-H HELO] [-t SECONDS] [-d SECONDS] [-T none|may|encrypt|verify] [--ca FILE]\n"
	    "               [-N NOTIFY] [-R FULL|HDRS] [-E ENVID] [-B 7BIT|8BITMIME] [-U] [--no-chunking]\n"
	    "               [--uncertain-final] [--dns-server IP[:PORT],...] [-v] RECIPIENT...\n");
}

/* Options that are not stored straight into a struct. */
typedef struct args {
	gw_lmtp_opts o;
	gw_lmtp_txn txn;
	int json, verbose, proto_set;
	const char *file, *notify;
	gw_nexthop hops[HOPS_MAX];
	size_t nhops;
} args;

/* One -g argument: an optional "lmtp:"/"smtp:"/"relay:" then next hops separated by commas or blanks. */
static int add_hops(args *a, const char *arg)
{
	const char *s = arg, *err = NULL;
	int proto = -1;

	if (strncmp(s, "lmtp:", 5) == 0) {
		proto = GW_PROTO_LMTP;
		s += 5;
	} else if (strncmp(s, "smtp:", 5) == 0 || strncmp(s, "relay:", 6) == 0) {
		proto = GW_PROTO_SMTP;
		s += s[0] == 's' ? 5 : 6;
	}
	if (proto >= 0) {
		if (a->proto_set && (int)a->o.client.proto != proto) {
			fprintf(stderr, "gw-send: %s: protocol differs from the one already chosen\n", arg);
			return -1;
		}
		a->o.client.proto = (gw_proto)proto;
		a->proto_set = 1;
	}
	while (*s != '\0') {
		size_t len;

		s += strspn(s, ", \t");
		len = strcspn(s, ", \t");
		if (len == 0)
			break;
		if (a->nhops == HOPS_MAX) {
			fprintf(stderr, "gw-send: more than %d next hops\n", HOPS_MAX);
			return -1;
		}
		if (gw_nexthop_parse(s, len, &a->hops[a->nhops], &err) < 0) {
			fprintf(stderr, "gw-send: bad next hop \"%.*s\": %s\n", (int)len, s, err);
			return -1;
		}
		a->nhops++;
		s += len;
	}
	return 0;
}

static int set_proto(args *a, gw_proto p)
{
	if (a->proto_set && a->o.client.proto != p) {
		fprintf(stderr, "gw-send: --lmtp and --smtp (or an lmtp:/smtp: next hop) disagree\n");
		return -1;
	}
	a->o.client.proto = p;
	a->proto_set = 1;
	return 0;
}

static int parse_seconds(const char *s, unsigned *ms)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v == 0 || v > 86400)
		return -1;
	*ms = (unsigned)(v * 1000);
	return 0;
}

/* Parse the command line into a; EX_OK or EX_USAGE. */
static int parse_args(int argc, char **argv, args *a, int *first_rcpt)
{
	enum { OPT_LMTP = 256, OPT_SMTP, OPT_JSON, OPT_CA, OPT_NOCHUNK, OPT_UNCERTAIN, OPT_DNS };
	static const struct option longs[] = {
	    {"lmtp", no_argument, NULL, OPT_LMTP},
	    {"smtp", no_argument, NULL, OPT_SMTP},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"ca", required_argument, NULL, OPT_CA},
	    {"no-chunking", no_argument, NULL, OPT_NOCHUNK},
	    {"uncertain-final", no_argument, NULL, OPT_UNCERTAIN},
	    {"dns-server", required_argument, NULL, OPT_DNS},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char dns[1024] = "", err[256];
	size_t dns_len = 0;
	unsigned ms;
	int c;

	a->o.client.proto = GW_PROTO_LMTP;
	a->o.client.helo_name = "localhost";
	a->o.client.connect_timeout_ms = 10000;
	a->o.client.reply_timeout_ms = 300000;
	a->txn.sender = "";
	while ((c = getopt_long(argc, argv, "f:g:m:H:t:d:T:N:R:E:B:Uvh", longs, NULL)) != -1) {
		switch (c) {
		case 'f':
			a->txn.sender = optarg;
			break;
		case 'g':
			if (add_hops(a, optarg) < 0)
				return EX_USAGE;
			break;
		case 'm':
			a->file = optarg;
			break;
		case 'H':
			a->o.client.helo_name = optarg;
			break;
		case 't':
			if (parse_seconds(optarg, &ms) < 0)
				goto bad;
			a->o.client.reply_timeout_ms = ms;
			a->o.client.connect_timeout_ms = ms < 10000 ? ms : 10000;
			break;
		case 'd':
			if (parse_seconds(optarg, &ms) < 0)
				goto bad;
			a->o.client.deadline_ms = ms;
			break;
		case 'T':
			/* dane needs TLSA records per host, which only gw-lmtpd's relay looks up. */
			if (gw_tls_policy_parse(optarg, &a->o.client.tls) < 0 ||
			    a->o.client.tls == GW_TLS_DANE)
				goto bad;
			break;
		case OPT_CA:
			a->o.client.tls_ca_file = optarg;
			break;
		case 'N':
			a->notify = optarg;
			break;
		case 'R':
			a->txn.ret = optarg;
			break;
		case 'E':
			a->txn.envid = optarg;
			break;
		case 'B':
			a->txn.body_type = optarg;
			break;
		case 'U':
			a->txn.smtputf8 = 1;
			break;
		case 'v':
			a->verbose = 1;
			break;
		case OPT_LMTP:
		case OPT_SMTP:
			if (set_proto(a, c == OPT_LMTP ? GW_PROTO_LMTP : GW_PROTO_SMTP) < 0)
				return EX_USAGE;
			break;
		case OPT_JSON:
			a->json = 1;
			break;
		case OPT_NOCHUNK:
			a->o.no_chunking = 1;
			break;
		case OPT_UNCERTAIN:
			a->o.uncertain_final = 1;
			break;
		case OPT_DNS: /* repeatable: the lists are joined */
			if (strlen(optarg) + 2 >= sizeof dns - dns_len) {
				fprintf(stderr, "gw-send: --dns-server: list too long\n");
				return EX_USAGE;
			}
			dns_len += (size_t)snprintf(dns + dns_len, sizeof dns - dns_len, "%s%s",
						    dns_len ? "," : "", optarg);
			break;
		case 'h':
			usage();
			exit(EX_OK);
		default:
			usage();
			return EX_USAGE;
		}
		continue;
	bad:
		fprintf(stderr, "gw-send: bad value for -%c: %s\n", c, optarg);
		return EX_USAGE;
	}
	if (dns_len > 0 && gw_dns_configure(dns, 0, err, sizeof err) != 0) {
		fprintf(stderr, "gw-send: --dns-server: %s\n", err);
		return EX_USAGE;
	}
	*first_rcpt = optind;
	if (a->nhops == 0 || optind >= argc) {
		usage();
		return EX_USAGE;
	}
	if ((size_t)(argc - optind) > GW_LMTP_RCPTS_MAX) {
		fprintf(stderr, "gw-send: more than %d recipients\n", GW_LMTP_RCPTS_MAX);
		return EX_USAGE;
	}
	return EX_OK;
}

/* Copy fd into an unlinked temporary file; the new fd, or -1. */
static int spool(int fd)
{
	char path[] = "/tmp/gw-send-XXXXXX", buf[65536];
	const char *dir = getenv("TMPDIR");
	char *tpl = NULL;
	int out;
	ssize_t n;

	if (dir != NULL && *dir != '\0' && asprintf(&tpl, "%s/gw-send-XXXXXX", dir) < 0)
		return -1;
	out = mkstemp(tpl != NULL ? tpl : path);
	if (out < 0) {
		free(tpl);
		return -1;
	}
	unlink(tpl != NULL ? tpl : path);
	free(tpl);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		ssize_t off = 0;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		while (off < n) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				goto fail;
			off += w;
		}
	}
	if (lseek(out, 0, SEEK_SET) == 0)
		return out;
fail:
	close(out);
	return -1;
}

/* Write s as a JSON string: control bytes and bytes >= 0x80 escaped (peer text may not be UTF-8). */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void print_result(FILE *f, int json, const char *rcpt, const gw_lmtp_result *r)
{
	char text[GW_LOG_PEER_MAX * 4 + 8], addr[GW_LOG_PEER_MAX * 4 + 8];

	if (json) {
		fputs("{\"rcpt\":", f);
		json_str(f, rcpt);
		fprintf(f, ",\"state\":\"%s\",\"stage\":\"%s\",\"code\":%d,\"enh\":",
			gw_lmtp_state_str(r->state), gw_lmtp_stage_str(r->stage), r->code);
		json_str(f, r->enh);
		fputs(",\"gateway\":", f);
		json_str(f, r->gateway);
		fprintf(f, ",\"attempts\":%u,\"local\":%s,\"status\":\"%s\",\"text\":", r->attempts,
			r->local ? "true" : "false", gw_status_str(r->status));
		json_str(f, r->text);
		fputs("}\n", f);
		return;
	}
	gw_log_sanitize(addr, sizeof(addr), rcpt, strlen(rcpt), GW_LOG_PEER_MAX);
	gw_log_sanitize(text, sizeof(text), r->text, strcspn(r->text, "\n"), GW_LOG_PEER_MAX);
	fprintf(f, "%s: %s stage=%s code=%d enh=%s gateway=%s attempts=%u text=\"%s\"\n", addr,
		gw_lmtp_state_str(r->state), gw_lmtp_stage_str(r->stage), r->code, r->enh[0] ? r->enh : "-",
		r->gateway[0] ? r->gateway : "-", r->attempts, text);
}

/* sysexits for the set of results (see the top of the file). */
static int exit_status(const gw_lmtp_result *r, size_t n)
{
	int temp = 0, perm = 0, address_only = 1, content = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (r[i].state == GW_LMTP_TEMPFAIL || r[i].state == GW_LMTP_UNCERTAIN ||
		    r[i].state == GW_LMTP_PENDING)
			temp = 1;
		else if (r[i].state == GW_LMTP_PERMFAIL) {
			perm = 1;
			if (strncmp(r[i].enh, "5.1.", 4) != 0)
				address_only = 0;
			if (r[i].local && strcmp(r[i].enh, "5.6.0") == 0)
				content = 1; /* the message itself cannot be sent: no address is to blame */
		}
	}
	if (temp)
		return EX_TEMPFAIL;
	if (content)
		return EX_DATAERR;
	if (perm)
		return address_only ? EX_NOUSER : EX_UNAVAILABLE;
	return EX_OK;
}

int main(int argc, char **argv)
{
	args a;
	gw_lmtp_rcpt *rcpts = NULL;
	gw_lmtp_result *res = NULL;
	gw_lmtp_body body;
	gw_lmtp *l = NULL;
	int first = 0, rc, fd = STDIN_FILENO, i;
	size_t n;
	struct stat st;

	memset(&a, 0, sizeof(a));
	rc = parse_args(argc, argv, &a, &first);
	if (rc != EX_OK)
		return rc;
	gw_log_open("gw-send", GW_LOG_STDERR, a.verbose ? GW_LOG_DEBUG : GW_LOG_WARNING);
	if (a.file != NULL && strcmp(a.file, "-") != 0) {
		fd = open(a.file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "gw-send: %s: %s\n", a.file, strerror(errno));
			return EX_NOINPUT;
		}
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || lseek(fd, 0, SEEK_CUR) < 0) {
		int sp = spool(fd);

		if (sp < 0) {
			fprintf(stderr, "gw-send: cannot spool the message: %s\n", strerror(errno));
			return EX_IOERR;
		}
		if (fd != STDIN_FILENO)
			close(fd);
		fd = sp;
	}
	if (gw_lmtp_body_fd(&body, fd) < 0) {
		fprintf(stderr, "gw-send: cannot read the message: %s\n", strerror(errno));
		return EX_NOINPUT;
	}
	n = (size_t)(argc - first);
	rcpts = calloc(n, sizeof(*rcpts));
	res = calloc(n, sizeof(*res));
	l = gw_lmtp_new(&a.o);
	if (rcpts == NULL || res == NULL || l == NULL) {
		fprintf(stderr, "gw-send: out of memory\n");
		return EX_OSERR;
	}
	for (i = 0; i < (int)n; i++) {
		rcpts[i].addr = argv[first + i];
		rcpts[i].notify = a.notify;
	}
	a.txn.rcpts = rcpts;
	a.txn.nrcpts = n;
	a.txn.body = &body;
	gw_lmtp_send_fallback(l, a.hops, a.nhops, &a.txn, res);
	for (i = 0; i < (int)n; i++)
		print_result(stdout, a.json, rcpts[i].addr, &res[i]);
	rc = exit_status(res, n);
	gw_lmtp_free(&l);
	free(rcpts);
	free(res);
	close(fd);
	if (fflush(stdout) != 0 && rc == EX_OK)
		rc = EX_IOERR;
	return rc;
}
