/*
 * version.c - the library version string.
 */
#include "gw/gw.h"

const char *gw_version(void)
{
	return GW_VERSION_STRING;
}
