/*
 * bench_directory.c - RCPT decisions per second through the directory check
 * (libgw gw_dir_check) with a cold and a warm cache, against the same
 * recipients checked by call-ahead (gw_ca_check) in the same run.
 *
 * usage: bench_directory URL_TEMPLATE SMTP_PORT COUNT [THREADS]
 *
 * Recipients user0@example.org .. user{COUNT-1}@example.org. Phases, each
 * with THREADS threads (default 4) sharing the work:
 *   directory cold   a new directory (empty cache): one request per recipient
 *   directory warm   the same directory again: every answer from the cache
 *   callahead live   a new call-ahead engine (empty cache) to the SMTP server
 *                    on 127.0.0.1:SMTP_PORT: one RCPT per recipient, three
 *                    recipients per message (one pooled session per thread)
 *   callahead cached the same engine again (route up, confirmed: cached)
 * Prints one line per phase (decisions per second, answers by kind), the
 * ratios against "callahead live", the temporary answers of the directory
 * phases (0 expected: the bench's load is within the directory's capacity)
 * and the LDAP connections the directory opened. bench/bench_directory.sh starts slapd and
 * smtp-sink and runs it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/callahead.h"
#include "gw/directory.h"
#include "gw/route.h"
#include "gw/time.h"

typedef struct job {
	gw_directory *dir;
	gw_callahead *ca;
	const gw_route *route;
	int from, to;
	long yes, no, temp;
} job;

static void rcpt_of(int i, char *buf, size_t size)
{
	snprintf(buf, size, "user%d@example.org", i);
}

static void *dir_run(void *v)
{
	job *j = v;
	gw_dir_result r;
	char rcpt[64];
	int i;

	for (i = j->from; i < j->to; i++) {
		rcpt_of(i, rcpt, sizeof(rcpt));
		switch (gw_dir_check(j->dir, rcpt, 0, &r)) {
		case GW_DIR_EXISTS:
			j->yes++;
			break;
		case GW_DIR_UNKNOWN:
			j->no++;
			break;
		default:
			if (j->temp++ < 3)
				fprintf(stderr, "bench_directory: %s: temporary: %s\n", rcpt, r.text);
		}
	}
	return NULL;
}

static void *ca_run(void *v)
{
	job *j = v;
	gw_ca_result r;
	gw_ca_txn *txn = NULL;
	char rcpt[64];
	int i;

	for (i = j->from; i < j->to; i++) {
		if (txn == NULL && (txn = gw_ca_txn_begin(j->ca)) == NULL) {
			j->temp++;
			continue;
		}
		rcpt_of(i, rcpt, sizeof(rcpt));
		switch (gw_ca_check(txn, j->route, rcpt, &r)) {
		case GW_VERDICT_ACCEPT:
			j->yes++;
			break;
		case GW_VERDICT_REJECT:
			j->no++;
			break;
		default:
			j->temp++;
		}
		if ((i - j->from) % 3 == 2)
			gw_ca_txn_end(&txn); /* three recipients per message */
	}
	if (txn != NULL)
		gw_ca_txn_end(&txn);
	return NULL;
}

/* Run fn over [0, n) in t threads; decisions per second. */
static double phase(const char *name, void *(*fn)(void *), job *proto, int n, int t, long *temp_r)
{
	pthread_t th[64];
	job jobs[64];
	int64_t t0, ms;
	long yes = 0, no = 0, temp = 0;
	double rate;
	int k;

	t0 = gw_now_ms();
	for (k = 0; k < t; k++) {
		jobs[k] = *proto;
		jobs[k].from = n * k / t;
		jobs[k].to = n * (k + 1) / t;
		pthread_create(&th[k], NULL, fn, &jobs[k]);
	}
	for (k = 0; k < t; k++) {
		pthread_join(th[k], NULL);
		yes += jobs[k].yes;
		no += jobs[k].no;
		temp += jobs[k].temp;
	}
	ms = gw_now_ms() - t0;
	rate = ms > 0 ? n * 1000.0 / (double)ms : 0;
	if (temp_r != NULL)
		*temp_r += temp;
	printf("%-17s %9.0f decisions/s  (%d in %lld ms; yes %ld, no %ld, temporary %ld)\n", name, rate, n,
	       (long long)ms, yes, no, temp);
	return rate;
}

int main(int argc, char **argv)
{
	char routes_text[128], err[256];
	gw_dir_opts dopts;
	gw_ca_opts copts;
	gw_routes *routes;
	job proto;
	int n, t;
	long dir_temp = 0;
	gw_dir_stats ds;
	double dcold, dwarm, clive, ccached;

	if (argc < 4) {
		fprintf(stderr, "usage: bench_directory URL_TEMPLATE SMTP_PORT COUNT [THREADS]\n");
		return 2;
	}
	n = atoi(argv[3]);
	t = argc > 4 ? atoi(argv[4]) : 4;
	if (n < 1 || t < 1 || t > 64) {
		fprintf(stderr, "bench_directory: bad COUNT or THREADS\n");
		return 2;
	}
	snprintf(routes_text, sizeof(routes_text), "example.org smtp:[127.0.0.1]:%s\n", argv[2]);
	if ((routes = gw_routes_parse(routes_text, strlen(routes_text), "bench", err, sizeof(err))) == NULL) {
		fprintf(stderr, "bench_directory: %s\n", err);
		return 1;
	}
	memset(&dopts, 0, sizeof(dopts));
	dopts.url = argv[1];
	dopts.max_requests = (unsigned)t;
	dopts.positive_ttl_ms = dopts.negative_ttl_ms = 3600000;
	memset(&proto, 0, sizeof(proto));
	if ((proto.dir = gw_directory_new(&dopts, NULL, NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "bench_directory: %s\n", err);
		return 1;
	}
	memset(&copts, 0, sizeof(copts));
	copts.tls = GW_TLS_NONE;
	copts.cache_entries = (size_t)n * 2;
	copts.max_probes = (unsigned)t * 2;
	if ((proto.ca = gw_callahead_new(&copts, NULL, NULL)) == NULL) {
		fprintf(stderr, "bench_directory: cannot make the call-ahead engine\n");
		return 1;
	}
	proto.route = gw_routes_lookup(routes, "example.org");
	printf("recipients %d, threads %d\n", n, t);
	dcold = phase("directory cold", dir_run, &proto, n, t, &dir_temp);
	dwarm = phase("directory warm", dir_run, &proto, n, t, &dir_temp);
	clive = phase("callahead live", ca_run, &proto, n, t, NULL);
	ccached = phase("callahead cached", ca_run, &proto, n, t, NULL);
	if (clive > 0)
		printf("ratio directory cold / callahead live %.2f, directory warm / callahead live %.2f, "
		       "callahead cached / callahead live %.2f\n",
		       dcold / clive, dwarm / clive, ccached / clive);
	gw_dir_stats_get(proto.dir, &ds);
	printf(
	    "directory temporary answers %ld (limited %llu), LDAP connections opened %llu, requests %llu\n",
	    dir_temp, (unsigned long long)ds.limited, (unsigned long long)ds.connects,
	    (unsigned long long)ds.requests);
	gw_directory_free(&proto.dir);
	gw_callahead_free(&proto.ca);
	gw_routes_free(&routes);
	return 0;
}
