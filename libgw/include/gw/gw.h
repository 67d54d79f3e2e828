/* gw/gw.h - every public header of libgw. */
#ifndef GW_GW_H
#define GW_GW_H

#include "gw/export.h"
#include "gw/addr.h"
#include "gw/buf.h"
#include "gw/cache.h"
#include "gw/callahead.h"
#include "gw/client.h"
#include "gw/config.h"
#include "gw/daemon.h"
#include "gw/metrics_http.h"
#include "gw/dane.h"
#include "gw/dns.h"
#include "gw/domain_tls.h"
#include "gw/lmtp.h"
#include "gw/log.h"
#include "gw/mx.h"
#include "gw/nexthop.h"
#include "gw/proto.h"
#include "gw/prvs.h"
#include "gw/reply.h"
#include "gw/route.h"
#include "gw/server.h"
#include "gw/server_tls.h"
#include "gw/time.h"

/* The library version, "MAJOR.MINOR.PATCH". */
GW_API const char *gw_version(void);

#endif
