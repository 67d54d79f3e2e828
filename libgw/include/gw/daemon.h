/*
 * gw/daemon.h - process plumbing shared by the gw daemons: pid files, the
 * switch from root to the configured user, listening sockets, and signals
 * turned into bytes on a pipe.
 *
 * Sockets are bound before the switch (ports below 1024, sockets in
 * root-owned directories); a unix socket gets its mode and owner here, so the
 * MTA's group can connect and other users cannot.
 *
 * Does not defend against: a stale pid file of another process (it is
 * overwritten); a unix socket path in a directory others can write (the old
 * socket is removed before binding, as Postfix and libmilter do).
 */
#ifndef GW_DAEMON_H
#define GW_DAEMON_H

#include "gw/export.h"

#include <stddef.h>
#include <sys/types.h>

#include "gw/nexthop.h"

/* Look up user: its uid and gid, or -1s when user is NULL/empty or already ours. 0, or -1 with err. */
GW_API int gw_daemon_user(const char *user, uid_t *uid_r, gid_t *gid_r, char *err, size_t errlen);
/* Switch to uid/gid (with user's groups) for good; nothing when uid is (uid_t)-1. 0, or -1 with err. */
GW_API int gw_daemon_drop(const char *user, uid_t uid, gid_t gid, char *err, size_t errlen);
/* Write our pid to path (nothing for NULL or ""). 0, or -1 with err. */
GW_API int gw_daemon_write_pid(const char *path, char *err, size_t errlen);
/*
 * A listening socket for hop: [address]:port (SO_REUSEADDR) or unix:/path
 * (an old socket file is removed; then mode and, when uid is not -1, owner
 * uid/gid). Close-on-exec and non-blocking. The fd, or -1 with err.
 */
GW_API int gw_daemon_listen(const gw_nexthop *hop, int backlog, mode_t mode, uid_t uid, gid_t gid, char *err,
			    size_t errlen);

/*
 * The peer of an accepted connection fd, for logs: "[192.0.2.7]:51234",
 * "[2001:db8::7]:51234", or "local" for a unix socket (or when unknown).
 */
GW_API void gw_daemon_peer_text(int fd, char *out, size_t outlen);

/*
 * Signals to a pipe: SIGHUP writes 'H', SIGTERM and SIGINT write 'T' to wfd
 * (the handler does nothing else, so the daemon acts on them in its own
 * thread); SIGPIPE is ignored. 0, or -1 with errno.
 */
GW_API int gw_daemon_signals_to(int wfd);

#endif
