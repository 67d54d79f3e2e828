/*
 * smfi_ctx.c - reading libmilter's private session context (see smfi_ctx.h).
 *
 * struct smfi_str as Sendmail 8.17's libmilter.h declares it, up to the
 * macro lists; the fields after them are never read.
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "smfi_ctx.h"

#define MACRO_LISTS    (SMFIM_LAST + 1) /* MAX_MACROS_ENTRIES */
#define MACRO_WALK_MAX 100000           /* strings in one list, at most (a packet is < 64 KB) */

struct smfi_str_817 {
	long ctx_id;
	int ctx_sd;
	int ctx_dbg;
	time_t ctx_timeout;
	int ctx_state;
	const struct smfiDesc *ctx_smfi;
	int ctx_prot_vers;
	unsigned long ctx_aflags;
	unsigned long ctx_pflags;
	unsigned long ctx_pflags2mta;
	int ctx_prot_vers2mta;
	char **ctx_mac_ptr[MACRO_LISTS];
	char *ctx_mac_buf[MACRO_LISTS];
};

static long want_timeout = -1;
static const struct smfiDesc *want_desc;
static struct sockaddr_storage listen_addr; /* family AF_UNSPEC: none */

void gwm_ctx_init(long timeout_s, const struct smfiDesc *desc, const char *s)
{
	want_timeout = timeout_s;
	want_desc = desc;
	memset(&listen_addr, 0, sizeof(listen_addr));
	if (s == NULL)
		return;
	if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&listen_addr;
		const char *p = strchr(s, ':') + 1;
		if (strlen(p) < sizeof(un->sun_path)) {
			un->sun_family = AF_UNIX;
			memcpy(un->sun_path, p, strlen(p) + 1);
		}
	} else if (strncmp(s, "inet:", 5) == 0 || strncmp(s, "inet6:", 6) == 0) {
		long port = strtol(strchr(s, ':') + 1, NULL, 10);
		if (s[4] == '6') {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&listen_addr;
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)port);
		} else {
			struct sockaddr_in *in = (struct sockaddr_in *)&listen_addr;
			in->sin_family = AF_INET;
			in->sin_port = htons((uint16_t)port);
		}
	}
}

/* Does ctx look like 8.17's context of one of our sessions? */
static const struct smfi_str_817 *layout(SMFICTX *ctx)
{
	const struct smfi_str_817 *c = (const struct smfi_str_817 *)(const void *)ctx;
	const struct smfiDesc *d;

	if (ctx == NULL || want_desc == NULL || (long)c->ctx_timeout != want_timeout)
		return NULL;
	d = c->ctx_smfi; /* libmilter's copy of the description we registered */
	if (d == NULL || d->xxfi_envrcpt != want_desc->xxfi_envrcpt || d->xxfi_close != want_desc->xxfi_close)
		return NULL;
	return c;
}

/* Is fd a connection accepted on the milter socket? */
static int is_milter_conn(int fd)
{
	struct sockaddr_storage a;
	socklen_t al = sizeof(a);
	struct stat st;

	memset(&a, 0, sizeof(a));
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) ||
	    getsockname(fd, (struct sockaddr *)&a, &al) != 0 || a.ss_family != listen_addr.ss_family)
		return 0;
	switch (a.ss_family) {
	case AF_UNIX:
		return strcmp(((struct sockaddr_un *)&a)->sun_path,
			      ((struct sockaddr_un *)&listen_addr)->sun_path) == 0;
	case AF_INET:
		return ((struct sockaddr_in *)&a)->sin_port == ((struct sockaddr_in *)&listen_addr)->sin_port;
	case AF_INET6:
		return ((struct sockaddr_in6 *)&a)->sin6_port ==
		       ((struct sockaddr_in6 *)&listen_addr)->sin6_port;
	default:
		return 0;
	}
}

int gwm_ctx_socket(SMFICTX *ctx)
{
	const struct smfi_str_817 *c = layout(ctx);

	return c != NULL && is_milter_conn(c->ctx_sd) ? c->ctx_sd : -1;
}

int gwm_ctx_macros_ok(SMFICTX *ctx)
{
	const struct smfi_str_817 *c = layout(ctx);
	int i;

	if (c == NULL)
		return -1;
	for (i = 0; i < MACRO_LISTS; i++) {
		char **s = c->ctx_mac_ptr[i];
		size_t n = 0;
		if (s == NULL || c->ctx_mac_buf[i] == NULL)
			continue; /* smfi_getsymval skips these too */
		/* libmilter ends each list with a NULL (dec_argv) */
		while (n < MACRO_WALK_MAX && s[n] != NULL)
			n++;
		if (n == MACRO_WALK_MAX || n % 2 != 0)
			return 0;
	}
	return 1;
}
