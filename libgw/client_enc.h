/*
 * client_enc.h - the wire form of a message body for DATA and BDAT
 * (internal to libgw, used by client.c and client_bdat.c).
 *
 * Sans-IO: fed the body in chunks of any size (a CRLF may be split across
 * them), it writes what goes on the wire: every line ending (CRLF, bare LF,
 * bare CR) as CRLF; with dot-stuffing (DATA) a '.' that starts a line
 * doubled; a line longer than CL_ENC_LINE_MAX octets broken as Postfix's
 * client does (smtp_line_length_limit = 998): CRLF and a SPACE are inserted,
 * so every line on the wire holds at most 998 octets before its CRLF (the
 * stuffed dot not counted, RFC 5321 4.5.3.1.6) and a broken header line
 * stays a folded header line. A NUL byte is refused: nothing of the chunk
 * that holds it is written, and the caller must not end the message.
 *
 * Does not defend against: content that needs its long lines intact (send
 * it in a MIME encoding: quoted-printable or base64 lines are short); the
 * inserted SPACE changes a broken body line (as Postfix's does).
 */
#ifndef GW_CLIENT_ENC_H
#define GW_CLIENT_ENC_H

#include <stddef.h>
#include <sys/types.h>

#define CL_ENC_LINE_MAX 998 /* octets before CRLF on the wire (RFC 5321: 1000 with CRLF) */
/* Room the output needs for n input bytes (CRLF for LF, a stuffed dot, the line breaks, a final CRLF). */
#define CL_ENC_ROOM(n) (3 * (size_t)(n) + 16)

typedef struct cl_enc {
	int dot_stuff;         /* DATA: double a leading dot; BDAT: no */
	int pending_cr;        /* the last byte was a CR: is an LF next? */
	size_t line_len;       /* content octets of the current wire line so far */
	unsigned long long in; /* input bytes taken so far (for the NUL's offset) */
	unsigned long breaks;  /* long lines broken so far */
} cl_enc;

/* Start a body: dot_stuff 1 for DATA, 0 for BDAT. */
void cl_enc_init(cl_enc *e, int dot_stuff);
/*
 * Encode in[0..n) into out (room for CL_ENC_ROOM(n)); the bytes written, or
 * -1 when the chunk holds a NUL (*nul_at_r: its offset in the whole body).
 */
ssize_t cl_enc_run(cl_enc *e, const char *in, size_t n, char *out, unsigned long long *nul_at_r);
/* After the last chunk: the final CRLF when the body did not end with a line end (room: 2). */
size_t cl_enc_finish(cl_enc *e, char *out);

#endif
