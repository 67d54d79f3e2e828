/*
 * hook.h - hooks on high-load mode changes: a command and/or a JSON POST,
 * run by a thread of their own so no milter thread ever waits for them.
 *
 * gwm_hook_post() queues an event (a copy of the command, URL and JSON) and
 * returns at once; the queue holds GWM_HOOK_QUEUE events, and when it is
 * full the oldest waiting one is dropped with a log line (the newest mode is
 * the one that matters). The thread runs, for each event in order:
 *   - the command with /bin/sh -c, the JSON in the environment as
 *     GW_FLOOD_EVENT and the mode as GW_FLOOD_MODE ("high" or "normal"),
 *     stdin /dev/null, stdout and stderr to a pipe whose first
 *     GWM_HOOK_OUTPUT_MAX bytes are logged (sanitised); exit status 0 is
 *     success; past the timeout its process group is killed (SIGKILL) and
 *     the attempt failed;
 *   - the POST (libcurl, Content-Type application/json, the whole exchange
 *     bounded by the timeout); a 2xx answer is success.
 * Each failed part is tried again up to retries more times, waiting 1, 2,
 * 4 ... s (at most 30) in between; every failure and the final outcome are
 * logged. gwm_hook_stop() abandons retries and waiting events (logged) but
 * lets a running attempt end within its timeout.
 *
 * Does not defend against: a command that forks a daemon into another
 * process group (it survives the kill); a URL the operator points at a slow
 * or hostile server (bounded by the timeout, nothing more); TLS settings
 * other than libcurl's defaults.
 */
#ifndef GWM_HOOK_H
#define GWM_HOOK_H

#include <stddef.h>

#define GWM_HOOK_QUEUE      16
#define GWM_HOOK_OUTPUT_MAX 200 /* bytes of a command's output logged */

/* Start the thread (curl_global_init here: call before other threads use curl). 0 ok, -1 (errno). */
int gwm_hook_start(void);
/* Stop the thread; waiting events are dropped (logged). */
void gwm_hook_stop(void);
/* Queue one event; command or url may be NULL or empty. Never blocks on the hook. */
void gwm_hook_post(const char *command, const char *url, long timeout_ms, unsigned retries, const char *mode,
		   const char *json);
/* Attempts that succeeded and that failed since start (for stats and tests). */
void gwm_hook_counts(unsigned long *ok_r, unsigned long *failed_r);

/* One attempt of each kind, run in the calling thread (the thread's work; tests call them). 0 ok, -1 with
 * err. */
int gwm_hook_run_command(const char *command, const char *mode, const char *json, long timeout_ms, char *out,
			 size_t outlen, char *err, size_t errlen);
int gwm_hook_run_post(const char *url, const char *json, long timeout_ms, char *err, size_t errlen);

#endif
