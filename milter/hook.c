/*
 * hook.c - the mode-change hooks of the bounce-flood guard (see hook.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "hook.h"
#include "gw/log.h"
#include "gw/time.h"

typedef struct hevent {
	char *command, *url, *mode, *json;
	long timeout_ms;
	unsigned retries;
} hevent;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static hevent queue[GWM_HOOK_QUEUE];
static size_t qhead, qlen;
static int running, quit;
static pthread_t thread;
static unsigned long n_ok, n_failed;

static void event_free(hevent *e)
{
	free(e->command);
	free(e->url);
	free(e->mode);
	free(e->json);
	memset(e, 0, sizeof(*e));
}

static char *dup_or_null(const char *s)
{
	return s != NULL && *s != '\0' ? strdup(s) : NULL;
}

void gwm_hook_counts(unsigned long *ok_r, unsigned long *failed_r)
{
	pthread_mutex_lock(&lock);
	*ok_r = n_ok;
	*failed_r = n_failed;
	pthread_mutex_unlock(&lock);
}

/* --- one attempt ------------------------------------------------------------ */

/* Keep what fits of the command's output in out (NUL-terminated), drop the rest; never blocks. */
static void drain(int fd, char *out, size_t outlen, size_t *used)
{
	char buf[512];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		size_t take = outlen > *used + 1 ? outlen - *used - 1 : 0;
		if (take > (size_t)n)
			take = (size_t)n;
		memcpy(out + *used, buf, take);
		*used += take;
		out[*used] = '\0';
	}
}

int gwm_hook_run_command(const char *command, const char *mode, const char *json, long timeout_ms, char *out,
			 size_t outlen, char *err, size_t errlen)
{
	int64_t t0 = gw_now_ms();
	int status, p[2];
	size_t used = 0;
	pid_t pid, r;

	if (outlen > 0)
		out[0] = '\0';
	/* Only our end is non-blocking: the command's writes must block, not fail, when the pipe is full. */
	if (pipe2(p, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		int fd = open("/dev/null", O_RDONLY);

		/* The daemon's threads block the stop signals; the command must not inherit that. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setpgid(0, 0);
		if (fd >= 0 && fd != 0) {
			dup2(fd, 0);
			close(fd);
		}
		/* Its output goes to the log (the start of it), not to the daemon's stdout. */
		dup2(p[1], 1);
		dup2(p[1], 2);
		/* The milter's sockets are not the command's business. */
		for (fd = 3; fd < 1024; fd++)
			(void)close(fd);
		setenv("GW_FLOOD_MODE", mode, 1);
		setenv("GW_FLOOD_EVENT", json, 1);
		execl("/bin/sh", "sh", "-c", command, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		drain(p[0], out, outlen, &used);
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			snprintf(err, errlen, "waitpid: %s", strerror(errno));
			close(p[0]);
			return -1;
		}
		if (gw_now_ms() - t0 >= timeout_ms) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
			close(p[0]);
			snprintf(err, errlen, "timed out after %ld ms, killed", timeout_ms);
			return -1;
		}
		usleep(20000);
	}
	drain(p[0], out, outlen, &used); /* what it wrote last; a child it left running is not waited for */
	close(p[0]);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		snprintf(err, errlen, "exit status %d", WEXITSTATUS(status));
	else
		snprintf(err, errlen, "killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return -1;
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
	(void)p;
	(void)ctx;
	return size * n;
}

int gwm_hook_run_post(const char *url, const char *json, long timeout_ms, char *err, size_t errlen)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	long code = 0;
	CURLcode rc;

	if (h == NULL) {
		snprintf(err, errlen, "curl_easy_init failed");
		return -1;
	}
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	rc = curl_easy_perform(h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_easy_strerror(rc));
		return -1;
	}
	if (code < 200 || code > 299) {
		snprintf(err, errlen, "HTTP status %ld", code);
		return -1;
	}
	return 0;
}

/* --- the thread ------------------------------------------------------------ */

/* Wait ms unless stopping; 1 when stopping. Lock not held. */
static int pause_ms(int64_t ms)
{
	int q;

	pthread_mutex_lock(&lock);
	if (!quit)
		(void)gw_cond_wait_ms(&cond, &lock, ms);
	q = quit;
	pthread_mutex_unlock(&lock);
	return q;
}

static void count(int ok)
{
	pthread_mutex_lock(&lock);
	if (ok)
		n_ok++;
	else
		n_failed++;
	pthread_mutex_unlock(&lock);
}

/* One part of an event with its retries. */
static void run_part(const hevent *e, int post)
{
	char err[256];
	unsigned attempt;
	int64_t backoff = 1000;

	for (attempt = 0; attempt <= e->retries; attempt++) {
		char out[GWM_HOOK_OUTPUT_MAX + 1] = "", clean[GWM_HOOK_OUTPUT_MAX * 4 + 8];
		int rc = post ? gwm_hook_run_post(e->url, e->json, e->timeout_ms, err, sizeof(err))
			      : gwm_hook_run_command(e->command, e->mode, e->json, e->timeout_ms, out,
						     sizeof(out), err, sizeof(err));

		gw_log_sanitize(clean, sizeof(clean), out, strlen(out), GWM_HOOK_OUTPUT_MAX);
		count(rc == 0);
		if (rc == 0) {
			gw_log(GW_LOG_NOTICE, "flood_hook",
			       "kind=%s mode=%s status=ok attempt=%u output=\"%s\"",
			       post ? "post" : "command", e->mode, attempt + 1, clean);
			return;
		}
		gw_log(GW_LOG_WARNING, "flood_hook",
		       "kind=%s mode=%s status=failed attempt=%u error=\"%s\" output=\"%s\"",
		       post ? "post" : "command", e->mode, attempt + 1, err, clean);
		if (attempt < e->retries && pause_ms(backoff)) {
			gw_log(GW_LOG_WARNING, "flood_hook", "kind=%s mode=%s status=abandoned why=stopping",
			       post ? "post" : "command", e->mode);
			return;
		}
		backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
	}
	gw_log(GW_LOG_ERR, "flood_hook", "kind=%s mode=%s status=gave-up attempts=%u",
	       post ? "post" : "command", e->mode, e->retries + 1);
}

static void *run(void *arg)
{
	hevent e;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&lock);
		while (qlen == 0 && !quit)
			pthread_cond_wait(&cond, &lock);
		if (quit) {
			while (qlen > 0) {
				gw_log(GW_LOG_WARNING, "flood_hook", "mode=%s status=dropped why=stopping",
				       queue[qhead].mode);
				event_free(&queue[qhead]);
				qhead = (qhead + 1) % GWM_HOOK_QUEUE;
				qlen--;
			}
			pthread_mutex_unlock(&lock);
			return NULL;
		}
		e = queue[qhead];
		memset(&queue[qhead], 0, sizeof(queue[qhead]));
		qhead = (qhead + 1) % GWM_HOOK_QUEUE;
		qlen--;
		pthread_mutex_unlock(&lock);
		if (e.command != NULL)
			run_part(&e, 0);
		if (e.url != NULL)
			run_part(&e, 1);
		event_free(&e);
	}
}

int gwm_hook_start(void)
{
	int rc;

	if (running)
		return 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		errno = ENOMEM;
		return -1;
	}
	quit = 0;
	if ((rc = pthread_create(&thread, NULL, run, NULL)) != 0) {
		curl_global_cleanup();
		errno = rc;
		return -1;
	}
	running = 1;
	return 0;
}

void gwm_hook_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&lock);
	quit = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(thread, NULL);
	running = 0;
	curl_global_cleanup();
}

void gwm_hook_post(const char *command, const char *url, long timeout_ms, unsigned retries, const char *mode,
		   const char *json)
{
	hevent e = {dup_or_null(command), dup_or_null(url), strdup(mode), strdup(json), timeout_ms, retries};

	if ((e.command == NULL && e.url == NULL) || e.mode == NULL || e.json == NULL) {
		if (e.mode == NULL || e.json == NULL)
			gw_log(GW_LOG_ERR, "flood_hook", "mode=%s status=dropped why=out-of-memory", mode);
		event_free(&e);
		return;
	}
	pthread_mutex_lock(&lock);
	if (!running) {
		pthread_mutex_unlock(&lock);
		gw_log(GW_LOG_WARNING, "flood_hook", "mode=%s status=dropped why=not-running", mode);
		event_free(&e);
		return;
	}
	if (qlen == GWM_HOOK_QUEUE) {
		gw_log(GW_LOG_WARNING, "flood_hook", "mode=%s status=dropped why=queue-full",
		       queue[qhead].mode);
		event_free(&queue[qhead]);
		qhead = (qhead + 1) % GWM_HOOK_QUEUE;
		qlen--;
	}
	queue[(qhead + qlen) % GWM_HOOK_QUEUE] = e;
	qlen++;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
}
