/*
 * main.c - gw-fakepeer, the fake SMTP/LMTP peer as a program for shell tests:
 *   gw-fakepeer -s SCRIPTFILE [-l 127.0.0.1|::1|unix:/path] [-p PORT] [-P PORTFILE]
 *               [-r RECORDDIR] [-t TIMEOUT_MS] [-n CONNECTIONS] [-b SOCKBUF]
 * Writes the port to PORTFILE once listening (atomically, by rename), each
 * connection's received bytes to RECORDDIR/conn-N.txt when it closes, and
 * exits 0 when every scripted connection has closed or on SIGTERM/SIGINT, 1 on
 * a script failure (message on stderr), 2 on bad usage. -n N serves N
 * connections, reusing the script's "---" sections in turn; line numbers in
 * messages then count in the repeated script. -b sets SO_SNDBUF and SO_RCVBUF
 * of each accepted connection (a small one shows a client that writes
 * without reading).
 * Does not defend against: anything beyond what fakepeer.c does; it runs
 * until its connections come, so the calling test must bound it.
 */
#include "fakepeer.h"
#include "fp_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	do {
		if (cap - len < 4096) {
			char *nb = realloc(b, cap = cap * 2 + 8192);
			if (nb == NULL) {
				free(b);
				fclose(f);
				return NULL;
			}
			b = nb;
		}
		n = fread(b + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		free(b);
		b = NULL;
	} else
		b[len] = '\0';
	fclose(f);
	return b;
}

/* Is the line at s (up to LF or NUL) a "---" separator? */
static int is_sep(const char *s)
{
	s += strspn(s, " \t");
	if (strncmp(s, "---", 3) != 0)
		return 0;
	s += 3;
	s += strspn(s, " \t\r");
	return *s == '\n' || *s == '\0';
}

/* The script with its sections repeated in turn until there are n of them. */
static char *repeat_sections(const char *text, unsigned n)
{
	const char **start = NULL;
	size_t *len = NULL, k = 0, total = 0, i;
	const char *s = text, *sec = text;
	char *out = NULL, *o;

	for (;;) {
		const char *e = strchr(s, '\n');
		int sep = is_sep(s);

		if (sep || e == NULL) {
			const char **ns = realloc(start, (k + 1) * sizeof *ns);
			size_t *nl = realloc(len, (k + 1) * sizeof *nl);
			if (ns)
				start = ns;
			if (nl)
				len = nl;
			if (!ns || !nl)
				goto out;
			start[k] = sec;
			len[k] = sep ? (size_t)(s - sec) : strlen(sec);
			k++;
			if (e == NULL && !sep)
				break;
			/* a "---" on the last line still opens an (empty) last section, as in fakepeer.c */
			sec = e ? e + 1 : s + strlen(s);
		}
		s = e ? e + 1 : sec;
	}
	for (i = 0; i < n; i++)
		total += len[i % k] + 6;
	out = malloc(total + 1);
	if (out == NULL)
		goto out;
	o = out;
	for (i = 0; i < n; i++) {
		if (i > 0) {
			memcpy(o, "\n---\n", 5);
			o += 5;
		}
		memcpy(o, start[i % k], len[i % k]);
		o += len[i % k];
	}
	*o = '\0';
out:
	free(start);
	free(len);
	return out;
}

static int write_file(const char *path, const char *data, size_t len)
{
	char tmp[4096];
	FILE *f;
	int ok;

	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
		return -1;
	f = fopen(tmp, "wb");
	if (f == NULL)
		return -1;
	ok = fwrite(data, 1, len, f) == len;
	ok = (fclose(f) == 0) && ok;
	if (!ok || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void write_record(fp_peer *p, const char *dir, unsigned i)
{
	char path[4096];
	const char *r;
	size_t len = 0;

	if (dir == NULL)
		return;
	r = fp_received(p, i, &len);
	snprintf(path, sizeof path, "%s/conn-%u.txt", dir, i);
	if (r == NULL || write_file(path, r, len) < 0)
		fprintf(stderr, "gw-fakepeer: cannot write %s\n", path);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: gw-fakepeer -s SCRIPTFILE [-l 127.0.0.1|::1|unix:/path] [-p PORT] [-P PORTFILE]\n"
		"                   [-r RECORDDIR] [-t TIMEOUT_MS] [-n CONNECTIONS] [-b SOCKBUF]\n");
	exit(2);
}

static unsigned number(const char *s)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno != 0 || *s < '0' || *s > '9' || *end != '\0' || n > 0xfffffffful)
		usage();
	return (unsigned)n;
}

int main(int argc, char **argv)
{
	const char *script_file = NULL, *portfile = NULL, *recdir = NULL;
	fp_opts o;
	char err[512], *text, buf[32];
	unsigned nconn = 0, written_n = 0, i, n, scripted;
	unsigned char *written = NULL;
	struct sigaction sa;
	struct timespec tick = {0, 20 * 1000000L};
	fp_peer *p;
	int c, rc = 0;

	memset(&o, 0, sizeof o);
	while ((c = getopt(argc, argv, "s:l:p:P:r:t:n:b:")) != -1) {
		switch (c) {
		case 's':
			script_file = optarg;
			break;
		case 'l':
			o.listen = optarg;
			break;
		case 'p':
			o.port = number(optarg);
			break;
		case 'P':
			portfile = optarg;
			break;
		case 'r':
			recdir = optarg;
			break;
		case 't':
			o.timeout_ms = number(optarg);
			break;
		case 'b':
			o.sockbuf = number(optarg);
			break;
		case 'n':
			nconn = number(optarg);
			if (nconn == 0)
				usage();
			break;
		default:
			usage();
		}
	}
	if (script_file == NULL || optind != argc)
		usage();
	text = read_file(script_file);
	if (text == NULL) {
		fprintf(stderr, "gw-fakepeer: cannot read %s\n", script_file);
		return 1;
	}
	if (nconn > 0) {
		char *rep = repeat_sections(text, nconn);
		free(text);
		if (rep == NULL) {
			fprintf(stderr, "gw-fakepeer: out of memory\n");
			return 1;
		}
		text = rep;
	}
	o.script = text;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: nanosleep returns at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	p = fp_start_opts(&o, err, sizeof err);
	free(text);
	if (p == NULL) {
		fprintf(stderr, "gw-fakepeer: %s\n", err);
		return 1;
	}
	snprintf(buf, sizeof buf, "%u\n", fp_port(p));
	if (portfile != NULL && write_file(portfile, buf, strlen(buf)) < 0) {
		fprintf(stderr, "gw-fakepeer: cannot write %s\n", portfile);
		fp_stop(&p);
		return 1;
	}
	scripted = fp_scripted(p);
	for (;;) {
		int all = 1;

		n = fp_connections(p);
		if (n > written_n) {
			unsigned char *nw = realloc(written, n);
			if (nw == NULL)
				break;
			memset(nw + written_n, 0, n - written_n);
			written = nw;
			written_n = n;
		}
		for (i = 0; i < n; i++)
			if (!written[i] && fp_conn_ended(p, i)) {
				write_record(p, recdir, i);
				written[i] = 1;
			}
		if (fp_error(p) != NULL) {
			fprintf(stderr, "gw-fakepeer: %s\n", fp_error(p));
			rc = 1;
			break;
		}
		for (i = 0; i < scripted; i++)
			if (i >= n || !written[i])
				all = 0;
		if (all || stop_signal)
			break;
		nanosleep(&tick, NULL);
	}
	/* Connections still open (stopped early): what they received so far. */
	n = fp_connections(p);
	for (i = 0; i < n; i++)
		if (i >= written_n || !written[i])
			write_record(p, recdir, i);
	free(written);
	fp_stop(&p);
	return rc;
}
