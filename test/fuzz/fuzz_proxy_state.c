/*
 * fuzz_proxy_state.c - libFuzzer target: any bytes as gw-proxy's state file
 * (proxy/state_file.c). Loading must either fail with "line N: ..." and
 * leave the tables empty, or succeed; the tables it filled must give a file
 * that loads back into the same tables, and write the same text again.
 *
 * Does not exercise the file system side (read, atomic write, rename of a
 * bad file): test_proxy_state does.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WALL       1800000000000LL /* the seeds' times lie around this */
#define CAP_RETIRE 3600000LL
#define CAP_MARK   600000LL

static int64_t fixed_clock(void)
{
	return 77777;
}

/* The tables, made again only after a load filled them: a refused file leaves them empty (checked), and
 * making 4096-entry tables for each input would be most of the run time. */
static gwp_pool *p, *p2;
static gwp_watch *w, *w2;

static void fresh(void)
{
	gwp_pool_free(&p);
	gwp_pool_free(&p2);
	gwp_watch_free(&w);
	gwp_watch_free(&w2);
	p = gwp_pool_new(fixed_clock);
	p2 = gwp_pool_new(fixed_clock);
	w = gwp_watch_new(fixed_clock);
	w2 = gwp_watch_new(fixed_clock);
	if (p == NULL || p2 == NULL || w == NULL || w2 == NULL)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gwp_state_counts c, c2;
	char err[256], list[64], *t1 = NULL, *t2 = NULL;
	size_t l1, l2, np, nw;

	if (p == NULL)
		fresh();
	err[0] = '\0';
	if (gwp_state_parse((const char *)data, size, WALL, CAP_RETIRE, CAP_MARK, p, w, &c, err,
			    sizeof(err)) != 0) {
		if (strncmp(err, "line ", 5) != 0 || strnlen(err, sizeof(err)) == sizeof(err))
			__builtin_trap(); /* a refusal always says where and why */
		if (gwp_pool_list(p, list, sizeof(list)) != 0 || gwp_watch_list(w, list, sizeof(list)) != 0)
			__builtin_trap(); /* all or nothing */
		return 0;
	}
	np = gwp_pool_list(p, list, sizeof(list));
	nw = gwp_watch_list(w, list, sizeof(list));
	if (c.retired < np || c.marks < nw)
		__builtin_trap();
	if (gwp_state_text(p, w, WALL, &t1, &l1, NULL) != 0 ||
	    gwp_state_parse(t1, l1, WALL, CAP_RETIRE, CAP_MARK, p2, w2, &c2, err, sizeof(err)) != 0)
		__builtin_trap(); /* what the writer writes loads */
	if (c2.retired != np || c2.marks != nw || c2.expired != 0 || c2.capped != 0)
		__builtin_trap();
	if (gwp_state_text(p2, w2, WALL, &t2, &l2, NULL) != 0 || l1 != l2 || memcmp(t1, t2, l1) != 0)
		__builtin_trap(); /* and gives the same tables */
	free(t1);
	free(t2);
	if (np + nw + c.expired > 0 || c.retired + c.marks > 0)
		fresh();
	return 0;
}
