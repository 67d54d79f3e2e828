/*
 * bench_flood_gen.c - a bounce flood for the end-to-end flood tests: C, so
 * that the generator takes little of the CPU the measurement shares.
 *
 *   bench_flood_gen -p PORT -c SESSIONS -s SECONDS [-R RATE] [-d] -n A.B -r RCPT -o FILE
 *
 * SESSIONS threads each run SMTP sessions one after the other for SECONDS
 * against 127.0.0.1:PORT, as fast as they can; with -R at RATE sessions a
 * second in all (0, the default: unpaced). Paced, session k of the common
 * schedule (run by thread k mod SESSIONS) starts at start + k / RATE on
 * CLOCK_MONOTONIC: absolute deadlines, so the rate does not drift with the
 * sessions' own time; a thread behind its schedule starts its next session
 * at once (it catches up, and a RATE the threads cannot reach comes to "as
 * fast as they can"), but none starts after SECONDS. Each session comes from a random source address
 * A.B.x.y (bound before connect: all of 127.0.0.0/8 is local): greeting,
 * EHLO, MAIL FROM:<>, RCPT TO:<RCPT> when MAIL was accepted, with -d DATA
 * and a bounce of about 1 KB when RCPT was accepted, QUIT. One line
 * per session goes to FILE: the CLOCK_MONOTONIC seconds of the MAIL reply
 * (the clock Python's time.monotonic() reads), "defer" (451 4.7.1 at MAIL),
 * "mail" (another MAIL reply), "rcpt" (MAIL accepted) or "error", and the
 * reply's first 80 characters. Exit 0 when FILE was written whole.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN 1024
#define OUT_MAX      (8u << 20) /* bytes of result lines per thread (touched pages only) */

static int port, sessions = 8;
static double seconds = 10, rate; /* rate: sessions a second in all, 0 = unpaced */
static struct timespec start;     /* CLOCK_MONOTONIC, the same for every thread */
static const char *net = "127.2", *rcpt = "alice@example.com";
static int with_data; /* -d: send the bounce when RCPT is accepted */

/* A delivery status notification of about 1 KB, as a flood's bounces are. */
static const char bounce_text[] =
    "From: MAILER-DAEMON@flood.client.test (Mail Delivery System)\r\n"
    "To: alice@example.com\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "Auto-Submitted: auto-replied\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "This is the mail system at host flood.client.test.\r\n"
    "\r\n"
    "I'm sorry to have to inform you that your message could not\r\n"
    "be delivered to one or more recipients. It's attached below.\r\n"
    "\r\n"
    "<nobody@flood.client.test>: host mx.flood.client.test said: 550 5.1.1\r\n"
    "    <nobody@flood.client.test>: Recipient address rejected: User unknown\r\n"
    "    (in reply to RCPT TO command)\r\n"
    "\r\n"
    "Reporting-MTA: dns; flood.client.test\r\n"
    "Arrival-Date: Wed, 2 Dec 2026 07:00:00 +0000\r\n"
    "Final-Recipient: rfc822; nobody@flood.client.test\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
    "\r\n"
    "Subject: You have won a prize\r\n"
    "From: alice@example.com\r\n"
    "To: nobody@flood.client.test\r\n"
    "\r\n"
    "Claim your prize now: the offer is only valid today. Claim your prize\r\n"
    "now: the offer is only valid today. Claim your prize now: the offer is\r\n"
    "only valid today. Claim your prize now: the offer is only valid today.\r\n"
    ".\r\n";

typedef struct conn {
	int fd;
	char buf[4096];
	size_t len;
} conn;

typedef struct worker {
	pthread_t th;
	int index; /* 0 .. sessions-1 */
	unsigned seed;
	char *out;
	size_t olen;
	unsigned long lost; /* lines that did not fit in out */
} worker;

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The last line of the next reply into line (no CRLF). 0 ok, -1 closed or too long. */
static int reply(conn *c, char *line, size_t size)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl != NULL) {
			size_t n = (size_t)(nl - c->buf) + 1, k = n;
			while (k > 0 && (c->buf[k - 1] == '\n' || c->buf[k - 1] == '\r'))
				k--;
			snprintf(line, size, "%.*s", (int)k, c->buf);
			memmove(c->buf, c->buf + n, c->len - n);
			c->len -= n;
			if (k < 4 || line[3] != '-')
				return 0;
			continue;
		}
		if (c->len == sizeof(c->buf))
			return -1;
		ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
}

static int cmd(conn *c, const char *text, char *line, size_t size)
{
	size_t n = strlen(text);

	if (send(c->fd, text, n, MSG_NOSIGNAL) != (ssize_t)n)
		return -1;
	return reply(c, line, size);
}

static void note(worker *w, double t, const char *kind, const char *line)
{
	if (w->olen + 128 < OUT_MAX)
		w->olen +=
		    (size_t)snprintf(w->out + w->olen, OUT_MAX - w->olen, "%.6f %s %.80s\n", t, kind, line);
	else
		w->lost++;
}

static void session(worker *w)
{
	struct sockaddr_in src = {0}, dst = {0};
	struct timeval tv = {60, 0};
	char line[LINE_MAX_LEN], a[64], ehlo[128];
	conn c = {.fd = -1};
	double t = mono();

	snprintf(a, sizeof(a), "%s.%d.%d", net, rand_r(&w->seed) % 256, 1 + rand_r(&w->seed) % 254);
	src.sin_family = dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, a, &src.sin_addr) != 1 ||
	    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr) != 1 ||
	    (c.fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		goto error;
	(void)setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (bind(c.fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
	    connect(c.fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 || reply(&c, line, sizeof(line)) != 0)
		goto error;
	snprintf(ehlo, sizeof(ehlo), "EHLO flood-%s.client.test\r\n", a);
	if (cmd(&c, ehlo, line, sizeof(line)) != 0 || cmd(&c, "MAIL FROM:<>\r\n", line, sizeof(line)) != 0)
		goto error;
	t = mono();
	if (strncmp(line, "451 4.7.1", 9) == 0) {
		note(w, t, "defer", line);
	} else if (strncmp(line, "250", 3) == 0) {
		char r[320];
		snprintf(r, sizeof(r), "RCPT TO:<%s>\r\n", rcpt);
		if (cmd(&c, r, line, sizeof(line)) != 0)
			goto error;
		note(w, t, "rcpt", line);
		if (with_data && strncmp(line, "250", 3) == 0 &&
		    cmd(&c, "DATA\r\n", line, sizeof(line)) == 0 && strncmp(line, "354", 3) == 0)
			(void)cmd(&c, bounce_text, line, sizeof(line));
	} else {
		note(w, t, "mail", line);
	}
	(void)cmd(&c, "QUIT\r\n", line, sizeof(line));
	close(c.fd);
	return;
error:
	note(w, t, "error", a);
	if (c.fd >= 0)
		close(c.fd);
}

/* start + at seconds, as a timespec for clock_nanosleep. */
static struct timespec at_offset(double at)
{
	struct timespec t = start;
	long long ns = (long long)(at * 1e9) + t.tv_nsec;

	t.tv_sec += (time_t)(ns / 1000000000);
	t.tv_nsec = (long)(ns % 1000000000);
	return t;
}

static void *run(void *arg)
{
	worker *w = arg;
	double t0 = (double)start.tv_sec + (double)start.tv_nsec / 1e9, end = t0 + seconds;
	unsigned long long k;

	if (rate <= 0) {
		while (mono() < end)
			session(w);
		return NULL;
	}
	/* This thread's sessions are k = index, index + sessions, ... of the common schedule. */
	for (k = (unsigned long long)w->index;; k += (unsigned long long)sessions) {
		double at = (double)k / rate;
		struct timespec due;

		if (at >= seconds || mono() >= end)
			break; /* a thread behind its schedule does not run past the end either */
		due = at_offset(at);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) != 0)
			; /* EINTR: sleep again until the same deadline */
		session(w);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *outpath = NULL;
	unsigned long lost = 0;
	worker *w;
	FILE *f;
	int o, i;

	while ((o = getopt(argc, argv, "p:c:s:R:dn:r:o:")) != -1) {
		switch (o) {
		case 'p':
			port = atoi(optarg);
			break;
		case 'c':
			sessions = atoi(optarg);
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'R':
			rate = atof(optarg);
			break;
		case 'd':
			with_data = 1;
			break;
		case 'n':
			net = optarg;
			break;
		case 'r':
			rcpt = optarg;
			break;
		case 'o':
			outpath = optarg;
			break;
		default:
			return 2;
		}
	}
	if (port <= 0 || port > 65535 || sessions <= 0 || sessions > 1000 || !(seconds > 0) ||
	    !(rate >= 0 && rate <= 1e6) || outpath == NULL) {
		fprintf(stderr, "usage: bench_flood_gen -p PORT -c SESSIONS -s SECONDS [-R RATE] [-d] -n A.B "
				"-r RCPT -o FILE\n");
		return 2;
	}
	if ((w = calloc((size_t)sessions, sizeof(*w))) == NULL)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (i = 0; i < sessions; i++) {
		w[i].index = i;
		w[i].seed = (unsigned)i * 2654435761u + 1;
		if ((w[i].out = malloc(OUT_MAX)) == NULL || pthread_create(&w[i].th, NULL, run, &w[i]) != 0) {
			fprintf(stderr, "bench_flood_gen: cannot start thread %d\n", i);
			return 1;
		}
	}
	for (i = 0; i < sessions; i++)
		pthread_join(w[i].th, NULL);
	if ((f = fopen(outpath, "w")) == NULL) {
		perror(outpath);
		return 1;
	}
	for (i = 0; i < sessions; i++) {
		fwrite(w[i].out, 1, w[i].olen, f);
		free(w[i].out);
		lost += w[i].lost;
	}
	free(w);
	if (lost > 0) /* a count from FILE would be short: say so rather than under-report */
		fprintf(stderr, "bench_flood_gen: %lu result lines did not fit in memory\n", lost);
	return fclose(f) == 0 && lost == 0 ? 0 : 1;
}
