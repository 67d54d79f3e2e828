/*
 * flood_detect.c - the flood detector (see flood_detect.h).
 */
#include <string.h>
#include <strings.h>

#include "flood_detect.h"
#include "flood_math.h"

/* Empty windows closed one by one after a long gap, at most: beyond that they change nothing more. */
#define MAX_CLOSE 256

void gwm_fd_init(gwm_fd *fd, const gwm_fd_params *p, int64_t now_ms)
{
	memset(fd, 0, sizeof(*fd));
	fd->p = *p;
	fd->win_start = now_ms;
	fd->force = GWM_FORCE_AUTO;
	fd->trigger = -1;
	fd->since_ms = now_ms;
}

void gwm_fd_set_params(gwm_fd *fd, const gwm_fd_params *p)
{
	fd->p = *p;
}

int gwm_fd_high(const gwm_fd *fd)
{
	if (fd->force == GWM_FORCE_HIGH)
		return 1;
	if (fd->force == GWM_FORCE_NORMAL)
		return 0;
	return fd->detected;
}

double gwm_fd_threshold(const gwm_fd *fd, int kind)
{
	double t = fd->p.multiple * fd->base[kind];

	return t > fd->p.floor[kind] ? t : fd->p.floor[kind];
}

static int transition(const gwm_fd *fd, int before, int64_t now_ms)
{
	int after = gwm_fd_high(fd);

	(void)now_ms;
	if (after == before)
		return GWM_FD_SAME;
	return after ? GWM_FD_ENTERED : GWM_FD_LEFT;
}

/* Start a flood when kind's count reached its threshold. */
static void check_enter(gwm_fd *fd, int kind, double count)
{
	if (!fd->detected && count >= gwm_fd_threshold(fd, kind)) {
		fd->detected = 1;
		fd->calm = 0;
		fd->trigger = kind;
	}
}

/* Close the current window. */
static void close_window(gwm_fd *fd)
{
	int k, calm = 1;

	for (k = 0; k < GWM_FD_KINDS; k++) {
		fd->last[k] = fd->cur[k];
		fd->cur[k] = 0;
		if (fd->detected) {
			if (fd->last[k] + fd->ext[k] >= fd->p.leave_ratio * gwm_fd_threshold(fd, k))
				calm = 0;
		} else {
			check_enter(fd, k, fd->last[k] + fd->ext[k]);
		}
	}
	if (fd->detected) {
		/* The window that started the flood is not calm either: it was checked just above. */
		fd->calm = calm ? fd->calm + 1 : 0;
		if (fd->calm >= fd->p.calm_windows) {
			fd->detected = 0;
			fd->calm = 0;
		}
	} else {
		for (k = 0; k < GWM_FD_KINDS; k++)
			fd->base[k] = gwm_ewma(fd->base[k], fd->last[k] + fd->ext[k], fd->p.alpha);
	}
	fd->win_start += fd->p.window_ms;
}

/* Close what ended by now_ms; mode changes are the caller's to report. */
static void roll(gwm_fd *fd, int64_t now_ms)
{
	unsigned n = 0;

	while (now_ms - fd->win_start >= fd->p.window_ms && n++ < MAX_CLOSE)
		close_window(fd);
	if (now_ms - fd->win_start >= fd->p.window_ms) /* a long gap: the rest were empty too */
		fd->win_start = now_ms - (now_ms - fd->win_start) % fd->p.window_ms;
}

static int finish(gwm_fd *fd, int before, int64_t now_ms)
{
	int t = transition(fd, before, now_ms);

	if (t != GWM_FD_SAME)
		fd->since_ms = now_ms;
	return t;
}

int gwm_fd_count(gwm_fd *fd, int kind, unsigned n, int64_t now_ms)
{
	int before = gwm_fd_high(fd);

	if (kind < 0 || kind >= GWM_FD_KINDS)
		return GWM_FD_SAME;
	roll(fd, now_ms);
	fd->cur[kind] += n;
	check_enter(fd, kind, fd->cur[kind] + fd->ext[kind]);
	return finish(fd, before, now_ms);
}

int gwm_fd_set_ext(gwm_fd *fd, const double *ext, int64_t now_ms)
{
	int before = gwm_fd_high(fd), k;

	roll(fd, now_ms);
	for (k = 0; k < GWM_FD_KINDS; k++) {
		fd->ext[k] = ext != NULL && ext[k] > 0 ? ext[k] : 0;
		check_enter(fd, k, (fd->cur[k] > fd->last[k] ? fd->cur[k] : fd->last[k]) + fd->ext[k]);
	}
	return finish(fd, before, now_ms);
}

int gwm_fd_tick(gwm_fd *fd, int64_t now_ms)
{
	int before = gwm_fd_high(fd);

	roll(fd, now_ms);
	return finish(fd, before, now_ms);
}

int gwm_fd_force(gwm_fd *fd, gwm_force force, int64_t now_ms)
{
	int before = gwm_fd_high(fd);

	fd->force = force;
	return finish(fd, before, now_ms);
}

const char *gwm_fd_kind_str(int kind)
{
	static const char *const names[] = {"bounce", "prvs", "unknown"};

	return kind >= 0 && kind < GWM_FD_KINDS ? names[kind] : "none";
}

static const char *const force_names[] = {"auto", "high", "normal"};

const char *gwm_force_str(gwm_force f)
{
	return (unsigned)f < 3 ? force_names[f] : "auto";
}

int gwm_force_parse(const char *s, gwm_force *f_r)
{
	unsigned i;

	for (i = 0; i < 3; i++)
		if (strcasecmp(s, force_names[i]) == 0) {
			*f_r = (gwm_force)i;
			return 0;
		}
	return -1;
}
