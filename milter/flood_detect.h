/*
 * flood_detect.h - the flood detector: per-window counts of null-sender
 * mail, PRVS failures and unknown recipients against an EWMA baseline, with
 * hysteresis, plus the operator's forced mode.
 *
 * A kind is in flood when its count in the current or the last complete
 * window reaches max(multiple * baseline, floor): the floor keeps a quiet
 * site (baseline near zero) from flipping on a handful of bounces. The check
 * runs at every count, so entry does not wait for the window to close. Each
 * closed window moves the baseline by alpha towards its count, except while
 * in high-load mode (a flood must not become the new normal). High-load mode
 * is left after calm_windows consecutive closed windows in which every kind
 * stayed below leave_ratio times its threshold; one busier window starts the
 * count again, so a flood that pauses briefly does not flap the mode.
 *
 * With shared state, ext holds the other gateways' recent counts (each one's
 * larger of its current and last window, summed): every check adds them to
 * this gateway's own, and a closed window's baseline step and calm test use
 * own + ext, so the detector judges the fleet's rate and a flood spread over
 * the gateways, each below the floor alone, still starts high-load mode.
 *
 * Forced "high" or "normal" overrides the detection (which keeps running);
 * "auto" returns to it. Every call takes now_ms from the caller: no clock is
 * read here, and the caller does the locking.
 *
 * Does not defend against: a flood that grows slowly enough to drag the
 * baseline up with it (the floors and the operator's force are the answer);
 * a clock that jumps back (windows are not reopened, counts go to the
 * current one).
 */
#ifndef GWM_FLOOD_DETECT_H
#define GWM_FLOOD_DETECT_H

#include <stdint.h>

enum { GWM_FD_BOUNCE, GWM_FD_PRVS, GWM_FD_UNKNOWN, GWM_FD_KINDS };

typedef enum { GWM_FORCE_AUTO, GWM_FORCE_HIGH, GWM_FORCE_NORMAL } gwm_force;

typedef struct gwm_fd_params {
	int64_t window_ms;          /* the rate window (> 0) */
	double alpha;               /* EWMA weight of a closed window, (0, 1] */
	double multiple;            /* flood when count >= multiple * baseline ... */
	double floor[GWM_FD_KINDS]; /* ... and >= floor (> 0) */
	double leave_ratio;         /* calm when every count < leave_ratio * threshold, (0, 1] */
	unsigned calm_windows;      /* calm windows in a row that end high-load mode (>= 1) */
} gwm_fd_params;

typedef struct gwm_fd {
	gwm_fd_params p;
	int64_t win_start;
	double cur[GWM_FD_KINDS];  /* counts in the current window */
	double last[GWM_FD_KINDS]; /* counts of the last closed window */
	double base[GWM_FD_KINDS]; /* EWMA of closed windows' counts (with ext) */
	double ext[GWM_FD_KINDS];  /* the other gateways' recent counts, 0 without shared state */
	int detected;              /* the detector's own verdict */
	unsigned calm;
	gwm_force force;
	int trigger;      /* the kind that last started a flood, -1 none */
	int64_t since_ms; /* when the effective mode last changed */
} gwm_fd;

/* Transitions of the effective mode, as returned below. */
enum { GWM_FD_LEFT = -1, GWM_FD_SAME = 0, GWM_FD_ENTERED = 1 };

void gwm_fd_init(gwm_fd *fd, const gwm_fd_params *p, int64_t now_ms);
/* New parameters (a reload): counts, baselines and the mode are kept. */
void gwm_fd_set_params(gwm_fd *fd, const gwm_fd_params *p);
/* Count n events of kind at now_ms. Returns the transition it caused. */
int gwm_fd_count(gwm_fd *fd, int kind, unsigned n, int64_t now_ms);
/* Close the windows that ended by now_ms. Returns the transition. */
int gwm_fd_tick(gwm_fd *fd, int64_t now_ms);
/* The other gateways' recent counts (NULL: none), checked at once. Returns the transition. */
int gwm_fd_set_ext(gwm_fd *fd, const double *ext, int64_t now_ms);
/* Set the operator's force. Returns the transition. */
int gwm_fd_force(gwm_fd *fd, gwm_force force, int64_t now_ms);
/* 1 in high-load mode (forced or detected). */
int gwm_fd_high(const gwm_fd *fd);
/* The threshold of kind now: max(multiple * baseline, floor). */
double gwm_fd_threshold(const gwm_fd *fd, int kind);
/* Names: "bounce", "prvs", "unknown"; "auto", "high", "normal". */
const char *gwm_fd_kind_str(int kind);
const char *gwm_force_str(gwm_force f);
/* Parse a force name; 0 ok, -1 unknown. */
int gwm_force_parse(const char *s, gwm_force *f_r);

#endif
