/*
 * gw/proto.h - the protocol spoken to a next hop: SMTP or LMTP.
 *
 * Below both gw/client.h (which speaks it) and gw/route.h (which names it for
 * a destination), so a route table does not depend on the client engine.
 */
#ifndef GW_PROTO_H
#define GW_PROTO_H

#include "gw/export.h"

typedef enum gw_proto { GW_PROTO_SMTP = 0, GW_PROTO_LMTP = 1 } gw_proto;

/* "smtp" or "lmtp"; "unknown" for a value outside the enum. */
GW_API const char *gw_proto_str(gw_proto p);
/* "smtp" or "lmtp" in any case -> *proto_r. 0 ok; -1 for any other name (*proto_r unchanged). */
GW_API int gw_proto_parse(const char *name, gw_proto *proto_r);

#endif
