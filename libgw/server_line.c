/*
 * server_line.c - the server engine's command-line splitter.
 *
 * Takes the next command line out of the session's input: a line ends at LF
 * (CRLF or a bare LF, as Postfix accepts), and may be max_line bytes long
 * with its ending. A longer line is not kept: its bytes are dropped as they
 * come until its LF, then it is answered 500 5.5.6, so an endless line costs
 * no memory and the session goes on with the next command. A NUL or a CR
 * that does not end the line makes the line a 500 5.5.2. Checks nothing
 * else: the verb and its arguments are the parser's job.
 */
#include <string.h>

#include "server_int.h"

int gws_line_next(gw_srv *s, const char **line_r, size_t *len_r, int *code_r, const char **enh_r,
		  const char **text_r)
{
	for (;;) {
		const char *p = s->in + s->in_pos, *lf;
		size_t avail = s->in_len - s->in_pos, n;

		if (s->discarding) {
			lf = memchr(p, '\n', avail);
			if (lf == NULL) {
				s->in_pos = s->in_len;
				return 0;
			}
			s->in_pos += (size_t)(lf - p) + 1;
			s->discarding = 0;
			*code_r = 500;
			*enh_r = "5.5.6";
			*text_r = "Error: line too long";
			return -1;
		}
		lf = memchr(p, '\n', avail < s->cfg.max_line ? avail : s->cfg.max_line);
		if (lf == NULL) {
			if (avail < s->cfg.max_line)
				return 0;
			s->in_pos += s->cfg.max_line;
			s->discarding = 1;
			continue;
		}
		n = (size_t)(lf - p);
		s->in_pos += n + 1;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (memchr(p, '\0', n) != NULL) {
			*code_r = 500;
			*enh_r = "5.5.2";
			*text_r = "Error: NUL in command";
			return -1;
		}
		if (memchr(p, '\r', n) != NULL) {
			*code_r = 500;
			*enh_r = "5.5.2";
			*text_r = "Error: bare CR in command";
			return -1;
		}
		*line_r = p;
		*len_r = n;
		return 1;
	}
}
