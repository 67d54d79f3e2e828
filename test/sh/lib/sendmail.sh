# shellcheck shell=bash
# sendmail.sh - a real Sendmail 8.17 for the end-to-end tests, unpacked from
# Debian's packages, not installed (it coexists with Postfix). Source it; it
# defines functions only.
#
#   sm_unpack BUILD       fetch sendmail-bin, -cf, -base and libwrap0 with
#                         `apt-get download` and `dpkg -x` them into a cache
#                         ($BUILD/sendmail-cache, GW_SENDMAIL_CACHE overrides),
#                         reused by later runs; under a lock, as two tests may
#                         unpack at once. Sets sm_root (the unpacked tree),
#                         sm_bin and LD_LIBRARY_PATH (its libraries).
#                         Prints why and returns 1 when it cannot.
#   sm_cmd HOSTNAME       sets the array smx_cmd: the command that runs sm_bin
#                         in its own UTS namespace with that (dotted) host name
#
# Pitfalls: Sendmail stalls 60 s at start on an unqualified host name (hence
# sm_cmd); the binary is set-gid smmsp in the package, so the loader would
# ignore LD_LIBRARY_PATH (the bit is removed: the tests run as root anyway).

sm_unpack() {
	local cache=${GW_SENDMAIL_CACHE:-$1/sendmail-cache}
	local pkgs="sendmail-bin sendmail-cf sendmail-base libwrap0"   # libwrap0: not on a minimal Debian 12
	sm_root=$cache/root
	sm_bin=$sm_root/usr/libexec/sendmail/sendmail
	mkdir -p "$cache" || return 1
	(
		flock -w 300 9 || { echo "cannot lock $cache" >&2; exit 1; }
		[ -x "$sm_bin" ] && [ "$(cat "$cache/unpacked" 2>/dev/null)" = "$pkgs" ] && exit 0
		rm -rf "$cache/debs"; mkdir -p "$cache/debs"
		# shellcheck disable=SC2086
		( cd "$cache/debs" && { apt-get download $pkgs >/dev/null 2>&1 ||
			{ apt-get update -qq && apt-get download $pkgs >/dev/null; }; } ) ||
			{ echo "cannot download the sendmail packages" >&2; exit 1; }
		rm -rf "$sm_root"; mkdir -p "$sm_root"
		for d in "$cache/debs"/*.deb; do dpkg -x "$d" "$sm_root"; done
		[ -x "$sm_bin" ] || { echo "no $sm_bin in the unpacked packages" >&2; exit 1; }
		chmod ug-s "$sm_bin"
		echo "$pkgs" >"$cache/unpacked"
	) 9>"$cache/.lock" || return 1
	export LD_LIBRARY_PATH=$sm_root/lib/x86_64-linux-gnu:$sm_root/usr/lib/x86_64-linux-gnu
	if ldd "$sm_bin" | grep -q 'not found'; then
		echo "sendmail needs libraries that are not installed: $(ldd "$sm_bin" | grep 'not found' | tr -s ' \t' ' ')" >&2
		return 1
	fi
}

sm_cmd() {
	# shellcheck disable=SC2016,SC2034 # $0 and $@ are the inner shell's; smx_cmd is for the caller
	smx_cmd=(unshare --uts sh -c "hostname $1"' && exec "$0" "$@"' "$sm_bin")
}
