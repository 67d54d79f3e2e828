/*
 * daemon.c - pid files, privilege drop and listening sockets for the daemons.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "gw/daemon.h"
#include "net.h"

int gw_daemon_user(const char *user, uid_t *uid_r, gid_t *gid_r, char *err, size_t errlen)
{
	struct passwd *pw;

	*uid_r = (uid_t)-1;
	*gid_r = (gid_t)-1;
	if (user == NULL || *user == '\0')
		return 0;
	if ((pw = getpwnam(user)) == NULL) {
		snprintf(err, errlen, "unknown user %s", user);
		return -1;
	}
	if (pw->pw_uid == getuid())
		return 0;
	if (getuid() != 0) {
		snprintf(err, errlen, "only root can switch to user %s", user);
		return -1;
	}
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	return 0;
}

int gw_daemon_drop(const char *user, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	if (uid == (uid_t)-1)
		return 0;
	if (initgroups(user, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
		snprintf(err, errlen, "cannot switch to user %s: %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) { /* the switch must be for good */
		snprintf(err, errlen, "could regain root after switching to %s", user);
		return -1;
	}
	return 0;
}

int gw_daemon_write_pid(const char *path, char *err, size_t errlen)
{
	FILE *f;

	if (path == NULL || *path == '\0')
		return 0;
	if ((f = fopen(path, "w")) == NULL) {
		snprintf(err, errlen, "pid file %s: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f, "%ld\n", (long)getpid());
	if (fclose(f) != 0) {
		snprintf(err, errlen, "pid file %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int gw_daemon_listen(const gw_nexthop *hop, int backlog, mode_t mode, uid_t uid, gid_t gid, char *err,
		     size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;
	char what[GW_UNIX_PATH_MAX + GW_HOST_MAX + 16];

	memset(&ss, 0, sizeof(ss));
	if (hop->kind == GW_HOP_UNIX) {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		snprintf(what, sizeof(what), "unix:%s", hop->path);
		if (strlen(hop->path) >= sizeof(un->sun_path)) {
			snprintf(err, errlen, "%s: path too long", what);
			return -1;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, hop->path, strlen(hop->path) + 1);
		sl = sizeof(*un);
	} else {
		struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		snprintf(what, sizeof(what), "[%s]:%u", hop->host, hop->port);
		if (inet_pton(AF_INET, hop->host, &in4->sin_addr) == 1) {
			in4->sin_family = AF_INET;
			in4->sin_port = htons((unsigned short)hop->port);
			sl = sizeof(*in4);
		} else if (inet_pton(AF_INET6, hop->host, &in6->sin6_addr) == 1) {
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((unsigned short)hop->port);
			sl = sizeof(*in6);
		} else {
			snprintf(err, errlen, "%s: not a numeric address", what);
			return -1;
		}
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		snprintf(err, errlen, "%s: socket: %s", what, strerror(errno));
		return -1;
	}
	if (ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (ss.ss_family != AF_UNIX)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	else
		(void)unlink(hop->path);
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, backlog) != 0) {
		snprintf(err, errlen, "%s: %s", what, strerror(errno));
		close(fd);
		return -1;
	}
	if (ss.ss_family == AF_UNIX &&
	    (chmod(hop->path, mode) != 0 || (uid != (uid_t)-1 && chown(hop->path, uid, gid) != 0))) {
		snprintf(err, errlen, "%s: %s", what, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int signal_fd = -1;

static void on_signal(int sig)
{
	char b = sig == SIGHUP ? 'H' : 'T';
	int saved = errno;

	(void)!write(signal_fd, &b, 1);
	errno = saved;
}

int gw_daemon_signals_to(int wfd)
{
	struct sigaction sa;

	signal_fd = wfd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/*
	 * SA_NODEFER: while the handler runs the signal stays unblocked here, so a
	 * second one arriving then still finds this thread willing; otherwise the
	 * kernel hands it to a thread that sigwaits for it (libmilter's signal
	 * thread, which takes SIGHUP as "stop"). The handler is reentrant.
	 */
	sa.sa_flags = SA_RESTART | SA_NODEFER;
	if (sigaction(SIGHUP, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
	    sigaction(SIGINT, &sa, NULL) != 0)
		return -1;
	sa.sa_handler = SIG_IGN;
	return sigaction(SIGPIPE, &sa, NULL);
}

void gw_daemon_peer_text(int fd, char *out, size_t outlen)
{
	gw_net_peer_text(fd, out, outlen);
	if (out[0] != '[') /* a unix socket's client has no name */
		snprintf(out, outlen, "local");
}
