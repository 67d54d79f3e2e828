/*
 * rate_limit.c - a token bucket per tenant (see rate_limit.h).
 *
 * Tokens are kept in thousandths of a message, so refills of a fraction of
 * a message between two takes are not lost to rounding.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/time.h"
#include "rate_limit.h"

#define MILLI 1000 /* token units per message */

typedef struct entry {
	char key[64];
	long rate;      /* per minute, at the last take */
	int64_t tokens; /* thousandths of a message */
	int64_t at;     /* tokens were right at this time */
	int64_t last;   /* the last take, for making room */
	unsigned long messages, limited;
} entry;

struct gwp_rate {
	pthread_mutex_t lock;
	int64_t (*now)(void);
	entry *e;
	size_t n;
};

static int64_t clock_ms(void)
{
	return gw_now_ms();
}

gwp_rate *gwp_rate_new(int64_t (*now)(void))
{
	gwp_rate *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	if ((r->e = calloc(GWP_RATE_ENTRIES, sizeof(entry))) == NULL) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->now = now != NULL ? now : clock_ms;
	return r;
}

void gwp_rate_free(gwp_rate **rp)
{
	gwp_rate *r = *rp;

	if (r == NULL)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->e);
	free(r);
	*rp = NULL;
}

/* Bring x's bucket to now at rate (per minute): refill, capped at one minute's worth. */
static void refill(entry *x, long rate, int64_t now)
{
	int64_t cap = (int64_t)rate * MILLI, dt = now - x->at;

	if (dt > 0 && rate > 0) {
		/* rate * MILLI / 60000 per ms: tokens in thousandths need rate*dt/60 */
		int64_t add = dt >= 60000 ? cap : (int64_t)rate * dt / 60;
		x->tokens = x->tokens + add > cap ? cap : x->tokens + add;
	}
	if (x->tokens > cap)
		x->tokens = cap;
	if (dt > 0)
		x->at = now;
	x->rate = rate;
}

static entry *get(gwp_rate *r, const char *key, long rate, int64_t now)
{
	size_t i;
	entry *x = NULL;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->e[i].key, key) == 0)
			return &r->e[i];
	if (r->n < GWP_RATE_ENTRIES) {
		x = &r->e[r->n++];
	} else { /* full: the key that sent nothing for longest makes room */
		x = &r->e[0];
		for (i = 1; i < r->n; i++)
			if (r->e[i].last < x->last)
				x = &r->e[i];
	}
	memset(x, 0, sizeof(*x));
	snprintf(x->key, sizeof(x->key), "%s", key);
	x->rate = rate;
	x->tokens = (int64_t)rate * MILLI; /* a new key starts full */
	x->at = now;
	return x;
}

int gwp_rate_take(gwp_rate *r, const char *key, long per_minute, int64_t *wait_ms_r)
{
	entry *x;
	int64_t now;
	int ok;

	if (per_minute < 0)
		per_minute = 0;
	pthread_mutex_lock(&r->lock);
	now = r->now();
	x = get(r, key, per_minute, now);
	refill(x, per_minute, now);
	x->last = now;
	if (per_minute == 0 || x->tokens >= MILLI) {
		if (per_minute > 0)
			x->tokens -= MILLI;
		x->messages++;
		ok = 1;
		if (wait_ms_r != NULL)
			*wait_ms_r = 0;
	} else {
		x->limited++;
		ok = 0;
		/* the missing thousandths at rate*MILLI per 60000 ms, rounded up */
		if (wait_ms_r != NULL)
			*wait_ms_r = ((MILLI - x->tokens) * 60 + per_minute - 1) / per_minute;
	}
	pthread_mutex_unlock(&r->lock);
	return ok;
}

size_t gwp_rate_list(gwp_rate *r, char *out, size_t outlen)
{
	size_t i, len = 0;
	int64_t now;

	if (outlen > 0)
		out[0] = '\0';
	pthread_mutex_lock(&r->lock);
	now = r->now();
	for (i = 0; i < r->n; i++) {
		entry *x = &r->e[i];
		int k;
		refill(x, x->rate, now);
		if (len >= outlen)
			continue;
		if (x->rate > 0)
			k = snprintf(out + len, outlen - len,
				     "%s messages=%lu limited=%lu rate=%ld/min tokens=%lld\n", x->key,
				     x->messages, x->limited, x->rate, (long long)(x->tokens / MILLI));
		else
			k = snprintf(out + len, outlen - len,
				     "%s messages=%lu limited=%lu rate=none tokens=-\n", x->key, x->messages,
				     x->limited);
		if (k > 0)
			len += (size_t)k < outlen - len ? (size_t)k : outlen - len - 1;
	}
	pthread_mutex_unlock(&r->lock);
	return r->n;
}
