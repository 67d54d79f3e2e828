/*
 * bench_tarpit.c - a tarpit SMTP destination and a generator of sessions held
 * in it, both event-driven (one epoll loop), for bench/bench_proxy_tarpit.sh
 * and test/sh/proxy_tarpit.sh.
 *
 * SYNOPSIS
 *	bench_tarpit tarpit ADDRESS PORT STATUS_FILE
 *	bench_tarpit hold ADDRESS PORT COUNT RCPT STATUS_FILE
 *
 * DESCRIPTION
 *	tarpit: accepts every connection on ADDRESS:PORT and answers one byte
 *	every 250 ms (each connection on its own phase): a greeting of
 *	"220-tarpit.test slow" continuation lines that never ends, the classic
 *	tarpit (a client that bounds a reply's length gives up after a few KB,
 *	gw-proxy's after 4 KB: about 20 minutes); whatever the peer sends is read and
 *	dropped. STATUS_FILE holds "open=N accepted=N closed=N bytes=N",
 *	rewritten (rename) every 250 ms. SIGUSR1 closes every connection.
 *
 *	hold: opens COUNT SMTP sessions to ADDRESS:PORT (at most 64 still
 *	connecting or in the dialogue at a time), each reading the greeting and
 *	sending EHLO, MAIL FROM:<hold@tenant.test> and RCPT TO:<RCPT>, one
 *	command per reply; a session whose RCPT is sent and not answered is held
 *	and stays open. STATUS_FILE: "held=N opening=N answered2=N answered4=N
 *	answered5=N closed=N failed=N" (answered: a reply ended the session, by
 *	its class; closed: the peer closed; failed: connect or I/O error), every
 *	250 ms. Sessions are not opened again. With RCPT "-" there is no
 *	dialogue: a session is held from its first byte on and reads whatever
 *	comes (the tarpit's sessions held straight, the benchmark's reference).
 *
 *	Both raise RLIMIT_NOFILE to the hard limit and run until SIGTERM or
 *	SIGINT, exit status 0; 64 on bad arguments, 71 when they cannot start.
 *
 * BUGS
 *	A benchmark tool on loopback: replies longer than 512 bytes a line are
 *	cut, and IPv4 only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD      65536
#define TICK_MS     10
#define BYTE_MS     250
#define OPENING_MAX 64
#define LINE_MAX_   512

enum { ST_FREE = 0, ST_TARPIT, ST_GREETING, ST_EHLO, ST_MAIL, ST_HELD };

typedef struct conn {
	int state;
	int64_t due; /* tarpit: next byte */
	size_t sent; /* tarpit: bytes of the greeting sent */
	size_t len;  /* hold: bytes of the current reply line */
	char line[LINE_MAX_];
} conn;

static conn *conns;
static int top_fd; /* the highest descriptor in use */
static volatile sig_atomic_t stop, close_all;
static unsigned long n_open, n_accepted, n_closed, n_bytes, n_held, n_opening, n_ans[6], n_failed;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		close_all = 1;
	else
		stop = 1;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void status(const char *path, int tarpit)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return;
	if (tarpit)
		fprintf(f, "open=%lu accepted=%lu closed=%lu bytes=%lu\n", n_open, n_accepted, n_closed,
			n_bytes);
	else
		fprintf(
		    f,
		    "held=%lu opening=%lu answered2=%lu answered4=%lu answered5=%lu closed=%lu failed=%lu\n",
		    n_held, n_opening, n_ans[2], n_ans[4], n_ans[5], n_closed, n_failed);
	if (fclose(f) == 0)
		(void)rename(tmp, path);
}

static void drop(int ep, int fd)
{
	(void)epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	conns[fd].state = ST_FREE;
}

static int parse_addr(const char *addr, const char *port, struct sockaddr_in *sa)
{
	char *end;
	long p = strtol(port, &end, 10);

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)p);
	return *end == '\0' && p > 0 && p < 65536 && inet_pton(AF_INET, addr, &sa->sin_addr) == 1 ? 0 : -1;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* --- tarpit ------------------------------------------------------------------------------------ */

static const char greeting_line[] = "220-tarpit.test slow\r\n";

static int tarpit(const struct sockaddr_in *sa, const char *status_path)
{
	int one = 1, ep, lfd;
	int64_t next_status = 0;
	struct epoll_event ev, evs[256];

	if ((lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(lfd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 || listen(lfd, 4096) != 0 ||
	    (ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("bench_tarpit: listen");
		return 71;
	}
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	(void)epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	while (!stop) {
		int i, n = epoll_wait(ep, evs, 256, TICK_MS);
		int64_t now = now_ms();
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd) {
				int c;
				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					if (c >= MAX_FD) {
						close(c);
						continue;
					}
					memset(&conns[c], 0, sizeof(conns[c]));
					conns[c].state = ST_TARPIT;
					if (c > top_fd)
						top_fd = c;
					conns[c].due = now + BYTE_MS;
					ev.events = EPOLLIN;
					ev.data.fd = c;
					(void)epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
					n_open++;
					n_accepted++;
				}
				continue;
			}
			{
				char buf[4096];
				ssize_t r = recv(fd, buf, sizeof(buf), 0);
				if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
					drop(ep, fd);
					n_open--;
					n_closed++;
				}
			}
		}
		if (close_all) {
			close_all = 0;
			for (i = 0; i <= top_fd; i++)
				if (conns[i].state == ST_TARPIT) {
					drop(ep, i);
					n_open--;
					n_closed++;
				}
		}
		for (i = 0; i <= top_fd; i++) {
			conn *c = &conns[i];
			if (c->state != ST_TARPIT || c->due > now)
				continue;
			if (send(i, &greeting_line[c->sent % (sizeof(greeting_line) - 1)], 1,
				 MSG_DONTWAIT | MSG_NOSIGNAL) == 1) {
				c->sent++;
				n_bytes++;
			}
			c->due += BYTE_MS;
		}
		if (now >= next_status) {
			status(status_path, 1);
			next_status = now + 250;
		}
	}
	return 0;
}

/* --- hold -------------------------------------------------------------------------------------- */

static void sendstr(int fd, const char *s)
{
	(void)send(fd, s, strlen(s), MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* A session ends: by the state it was in, for the counters. */
static void end_hold(int ep, int fd, int code)
{
	if (conns[fd].state == ST_HELD)
		n_held--;
	else
		n_opening--;
	if (code >= 200 && code < 600)
		n_ans[code / 100]++;
	else if (code == 0)
		n_closed++;
	else
		n_failed++;
	drop(ep, fd);
}

/* One complete reply line of fd's session. */
static void hold_line(int ep, int fd, const char *rcpt_cmd)
{
	conn *c = &conns[fd];
	int code = atoi(c->line);

	if (c->state == ST_HELD && rcpt_cmd == NULL)
		return; /* no dialogue: read and drop */
	if (c->len < 4 || c->line[3] == '-')
		return; /* a continuation line */
	switch (c->state) {
	case ST_GREETING:
		if (code != 220)
			break;
		sendstr(fd, "EHLO hold.test\r\n");
		c->state = ST_EHLO;
		return;
	case ST_EHLO:
		if (code != 250)
			break;
		sendstr(fd, "MAIL FROM:<hold@tenant.test>\r\n");
		c->state = ST_MAIL;
		return;
	case ST_MAIL:
		if (code != 250)
			break;
		sendstr(fd, rcpt_cmd);
		c->state = ST_HELD;
		n_opening--;
		n_held++;
		return;
	default:
		break;
	}
	end_hold(ep, fd, code >= 200 && code < 600 ? code : -1);
}

static void hold_input(int ep, int fd, const char *rcpt_cmd)
{
	char buf[4096];
	ssize_t r, i;

	r = recv(fd, buf, sizeof(buf), 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		end_hold(ep, fd, r == 0 ? 0 : -1);
		return;
	}
	if (rcpt_cmd == NULL && conns[fd].state == ST_GREETING) {
		conns[fd].state = ST_HELD;
		n_opening--;
		n_held++;
	}
	for (i = 0; i < r && conns[fd].state != ST_FREE; i++) {
		conn *c = &conns[fd];
		if (buf[i] == '\n') {
			c->line[c->len] = '\0';
			hold_line(ep, fd, rcpt_cmd);
			c->len = 0;
		} else if (c->len < sizeof(c->line) - 1) {
			c->line[c->len++] = buf[i];
		}
	}
}

static int hold(const struct sockaddr_in *sa, unsigned long count, const char *rcpt, const char *status_path)
{
	char rcpt_cmd[600];
	unsigned long started = 0;
	int ep;
	int64_t next_status = 0;
	struct epoll_event ev, evs[256];

	snprintf(rcpt_cmd, sizeof(rcpt_cmd), "RCPT TO:<%s>\r\n", rcpt);
	rcpt = strcmp(rcpt, "-") == 0 ? NULL : rcpt_cmd;
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		perror("bench_tarpit: epoll");
		return 71;
	}
	while (!stop) {
		int i, n;
		int64_t now;
		while (started < count && n_opening < OPENING_MAX) {
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			started++;
			if (fd < 0 || fd >= MAX_FD) {
				if (fd >= 0)
					close(fd);
				n_failed++;
				continue;
			}
			if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 &&
			    errno != EINPROGRESS) {
				close(fd);
				n_failed++;
				continue;
			}
			memset(&conns[fd], 0, sizeof(conns[fd]));
			conns[fd].state = ST_GREETING;
			ev.events = EPOLLIN | EPOLLRDHUP;
			ev.data.fd = fd;
			(void)epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
			n_opening++;
		}
		n = epoll_wait(ep, evs, 256, 250);
		for (i = 0; i < n; i++)
			if (conns[evs[i].data.fd].state != ST_FREE)
				hold_input(ep, evs[i].data.fd, rcpt);
		now = now_ms();
		if (now >= next_status) {
			status(status_path, 0);
			next_status = now + 250;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	struct sigaction act;
	int rc;

	memset(&act, 0, sizeof(act));
	act.sa_handler = on_signal;
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	sigaction(SIGUSR1, &act, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 5 && strcmp(argv[1], "tarpit") == 0 && parse_addr(argv[2], argv[3], &sa) == 0) {
		rc = 0;
	} else if (argc == 7 && strcmp(argv[1], "hold") == 0 && parse_addr(argv[2], argv[3], &sa) == 0 &&
		   atol(argv[4]) > 0) {
		rc = 1;
	} else {
		fprintf(stderr, "usage: bench_tarpit tarpit ADDRESS PORT STATUS_FILE\n"
				"       bench_tarpit hold ADDRESS PORT COUNT RCPT STATUS_FILE\n");
		return 64;
	}
	raise_nofile();
	if ((conns = calloc(MAX_FD, sizeof(*conns))) == NULL) {
		perror("bench_tarpit");
		return 71;
	}
	rc = rc == 0 ? tarpit(&sa, argv[4]) : hold(&sa, (unsigned long)atol(argv[4]), argv[5], argv[6]);
	if (argc == 5)
		status(argv[4], 1);
	else
		status(argv[6], 0);
	free(conns);
	return rc;
}
