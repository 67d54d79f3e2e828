/*
 * gw-prvs - sign, verify and strip BATV/PRVS addresses from the command line.
 *
 *   gw-prvs [--keys FILE] [--day N] sign ADDRESS
 *   gw-prvs [--keys FILE] [--day N] verify ADDRESS
 *   gw-prvs strip ADDRESS
 *   gw-prvs keygen [K]
 *
 * A thin shell over gw/prvs.h for scripts, tests and operators. --keys
 * defaults to /etc/gw/prvs.keys; --day (days since 1970 UTC) defaults to
 * today, and exists so that scripts and tests can pin the clock.
 *
 * Exit status. sign: 0 signed, 1 left unsigned (printed unchanged, reason on
 * stderr), 5 malformed address. verify: 0 valid, 1 bad signature, 2 expired,
 * 3 unknown key, 4 not tagged, 5 malformed; it prints the original address
 * except when malformed. strip: 0 stripped, 4 not tagged (printed unchanged),
 * 5 malformed. All: 64 usage, 75 internal error (out of memory, OpenSSL),
 * 78 key file error.
 *
 * Does not defend against: a key file the invoking user may read but should
 * not (the permission check only refuses files open to group or others).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "gw/prvs.h"

#define DEFAULT_KEYS "/etc/gw/prvs.keys"

/* sysexits.h values, spelled out so the documented numbers are visible here. */
enum { EXIT_USAGE = 64, EXIT_TEMPFAIL = 75, EXIT_CONFIG = 78 };
enum {
	EXIT_UNSIGNED = 1,
	EXIT_BAD_SIGNATURE = 1,
	EXIT_EXPIRED = 2,
	EXIT_UNKNOWN_KEY = 3,
	EXIT_NOT_TAGGED = 4,
	EXIT_MALFORMED = 5
};

static void usage(FILE *f)
{
	fprintf(f, "usage: gw-prvs [--keys FILE] [--day N] sign ADDRESS\n"
		   "       gw-prvs [--keys FILE] [--day N] verify ADDRESS\n"
		   "       gw-prvs strip ADDRESS\n"
		   "       gw-prvs keygen [K]\n");
}

/* Parse a non-negative decimal day number; 0 ok, -1 otherwise. */
static int parse_day(const char *s, long *day_r)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0)
		return -1;
	*day_r = v;
	return 0;
}

static int load_ring(const char *path, gw_prvs_ring **ring_r)
{
	char err[512];

	if (gw_prvs_ring_load(path, ring_r, err, sizeof(err)) < 0) {
		fprintf(stderr, "gw-prvs: %s\n", err);
		return -1;
	}
	return 0;
}

static int cmd_sign(const gw_prvs_ring *ring, long day, const char *addr)
{
	char buf[GW_PRVS_ADDR_MAX + 1];
	gw_prvs_skip skip;
	int rc = gw_prvs_sign(ring, day, addr, 0, buf, sizeof(buf), &skip);

	if (rc < 0) {
		int e = errno;
		if (e == ENOSPC)
			fprintf(stderr, "gw-prvs: malformed: longer than %d characters once signed\n",
				GW_PRVS_ADDR_MAX);
		else
			fprintf(stderr, "gw-prvs: cannot sign: %s\n",
				e == EINVAL ? "not an address (local@domain)" : strerror(e));
		return e == EINVAL || e == ENOSPC ? EXIT_MALFORMED : EXIT_TEMPFAIL;
	}
	printf("%s\n", buf);
	if (rc == GW_PRVS_UNSIGNED) {
		fprintf(stderr, "gw-prvs: not signed: %s\n", gw_prvs_skip_str(skip));
		return EXIT_UNSIGNED;
	}
	return 0;
}

static int cmd_verify(const gw_prvs_ring *ring, long day, const char *addr)
{
	char orig[GW_PRVS_ADDR_MAX + 1];
	gw_prvs_result r = gw_prvs_verify(ring, day, addr, orig, sizeof(orig));

	switch (r) {
	case GW_PRVS_ERROR:
		/* ENOSPC: longer than any address (EX_TEMPFAIL would make a script retry forever) */
		if (errno == ENOSPC || errno == EINVAL) {
			fprintf(stderr, "gw-prvs: malformed: longer than %d characters\n", GW_PRVS_ADDR_MAX);
			return EXIT_MALFORMED;
		}
		fprintf(stderr, "gw-prvs: cannot verify: %s\n", strerror(errno));
		return EXIT_TEMPFAIL;
	case GW_PRVS_MALFORMED:
		fprintf(stderr, "gw-prvs: %s\n", gw_prvs_result_str(r));
		return EXIT_MALFORMED;
	case GW_PRVS_VALID:
		printf("%s\n", orig);
		return 0;
	default:
		break;
	}
	printf("%s\n", orig);
	fprintf(stderr, "gw-prvs: %s\n", gw_prvs_result_str(r));
	switch (r) {
	case GW_PRVS_BAD_SIGNATURE:
		return EXIT_BAD_SIGNATURE;
	case GW_PRVS_EXPIRED:
		return EXIT_EXPIRED;
	case GW_PRVS_UNKNOWN_KEY:
		return EXIT_UNKNOWN_KEY;
	default:
		return EXIT_NOT_TAGGED;
	}
}

static int cmd_strip(const char *addr)
{
	char buf[GW_PRVS_ADDR_MAX + 1];
	int rc = gw_prvs_strip(addr, buf, sizeof(buf));

	if (rc < 0) {
		fprintf(stderr, "gw-prvs: malformed tag\n");
		return EXIT_MALFORMED;
	}
	printf("%s\n", buf);
	return rc == 1 ? 0 : EXIT_NOT_TAGGED;
}

static int cmd_keygen(const char *knum)
{
	unsigned char key[32];
	char hex[2 * sizeof(key) + 1];
	int k = 0;

	if (knum != NULL) {
		if (knum[0] < '0' || knum[0] > '9' || knum[1] != '\0') {
			usage(stderr);
			return EXIT_USAGE;
		}
		k = knum[0] - '0';
	}
	if (RAND_bytes(key, sizeof(key)) != 1) {
		fprintf(stderr, "gw-prvs: no random bytes from OpenSSL\n");
		return EXIT_TEMPFAIL;
	}
	for (size_t i = 0; i < sizeof(key); i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	printf("%d %s\n", k, hex);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(hex, sizeof(hex));
	return fflush(stdout) == 0 ? 0 : EXIT_TEMPFAIL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"keys", required_argument, NULL, 'k'},
	    {"day", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *keys = DEFAULT_KEYS, *cmd;
	long day = (long)(time(NULL) / 86400);
	gw_prvs_ring *ring = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, "+k:d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			keys = optarg;
			break;
		case 'd':
			if (parse_day(optarg, &day) < 0) {
				fprintf(stderr, "gw-prvs: --day wants a day number (days since 1970)\n");
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind++];
	if (strcmp(cmd, "keygen") == 0) {
		if (argc - optind > 1) {
			usage(stderr);
			return EXIT_USAGE;
		}
		return cmd_keygen(optind < argc ? argv[optind] : NULL);
	}
	if (argc - optind != 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "strip") == 0)
		return cmd_strip(argv[optind]);
	if (strcmp(cmd, "sign") != 0 && strcmp(cmd, "verify") != 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (load_ring(keys, &ring) < 0)
		return EXIT_CONFIG;
	if (strcmp(cmd, "sign") == 0)
		rc = cmd_sign(ring, day, argv[optind]);
	else
		rc = cmd_verify(ring, day, argv[optind]);
	gw_prvs_ring_free(&ring);
	return rc;
}
