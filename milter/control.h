/*
 * control.h - gw-milter's control socket and its client (gw-milter -C).
 *
 * A unix stream socket, mode 0600, served by one thread. One command per
 * line, one answer line each, "ok ..." or "error ...":
 *
 *   stats           ok checks=N accepts=N rejects=N tempfails=N cache_hits=N ... routes_down=N pooled_idle=N
 *   purge ADDRESS   ok purged=0|1        forget the cached answer for ADDRESS
 *   purge all       ok purged=N          forget every cached answer
 *   mode            ok mode=high|normal force=auto|high|normal bounce=N/T ...   the flood guard
 *   mode WORD       force high-load mode (high), keep it off (normal), or let
 *                   the detector decide (auto); answers as "mode"
 *   metrics         every counter in Prometheus text format, several lines
 *                   (metrics.h); the only answer that is not one line
 *
 * Lines are bounded (GWM_CONTROL_LINE_MAX); a longer one gets an error and
 * the connection is closed. Each read waits at most a few seconds, so a
 * silent client cannot hold the thread.
 *
 * Does not defend against: local users who may connect (the socket's mode
 * and its directory decide who may); one client at a time is served.
 */
#ifndef GWM_CONTROL_H
#define GWM_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#define GWM_CONTROL_LINE_MAX 512
/* The longest answer (metrics is the long one). */
#define GWM_CONTROL_ANSWER_MAX 32768

/* Bind path (a stale socket is replaced), mode 0600, owned by uid:gid unless uid is (uid_t)-1. fd, or -1 with
 * err. */
int gwm_control_listen(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen);
/* Serve fd from a thread (fd is owned from now on; path is unlinked at stop). 0 ok, -1 (errno). */
int gwm_control_start(int fd, const char *path);
/* Stop the thread, close the socket, remove its path. */
void gwm_control_stop(void);
/* The answer to one command line (without its newline). */
void gwm_control_handle(const char *line, char *out, size_t outlen);
/* Send the words argv[0..argc) as one command to the socket at path and print the answer. Exit status: 0
 * "ok", 1 "error", 69 unreachable. */
int gwm_control_client(const char *path, int argc, char **argv);

#endif
