#!/usr/bin/env bash
# install_tree.sh - `cmake --install` puts in place everything an operator
# needs, checked against what the source tree holds, so that a man page,
# sample file, snippet, unit or program added later without an install rule
# fails here. Usage: install_tree.sh BUILD_DIR
#
# Expected lists come from the tree: docs/man/*.N (-> share/man/manN), the
# plain files in etc/ (-> share/doc/gw/examples, and /etc/gw with the prefix
# /usr), etc/postfix/* and etc/sendmail/* (-> share/doc/gw/examples/MTA),
# etc/systemd/*.service (-> lib/systemd/system, every Exec line naming an
# installed program), and every program the CMakeLists.txt of a program
# folder (not libgw/, test/, bench/) declares with add_executable (-> bin or
# sbin, and each has a man page). Three installs: prefix /usr/local in a
# temporary DESTDIR (no /etc/gw), prefix /usr (samples in /etc/gw), and /usr
# again over a changed /etc/gw/gw.conf (kept, not overwritten).
set -euo pipefail
bindir=${1:?usage: install_tree.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/gw-install-tree.XXXXXX)
trap 'rm -rf "$work"' EXIT
fails=0
ok() { echo "ok   - $*"; }
bad() {
	echo "FAIL - $*"
	fails=$((fails + 1))
}
# have ROOT REL DESC: ROOT/REL is a file
have() { if [ -f "$1/$2" ]; then ok "$3: $2"; else bad "$3 not installed: want $2"; fi; }

install_to() { # install_to DESTDIR PREFIX
	DESTDIR=$1 cmake --install "$bindir" --prefix "$2" >"$work/install.log" 2>&1 ||
		{ bad "cmake --install --prefix $2 failed: $(tail -3 "$work/install.log")"; return 1; }
}

# --- what the tree holds ------------------------------------------------------------

mapfile -t pages < <(cd "$top/docs/man" && ls | grep -E '\.[1-9]$')
mapfile -t samples < <(find "$top/etc" -maxdepth 1 -type f ! -name CMakeLists.txt -printf '%f\n' | sort)
mapfile -t snippets < <(cd "$top/etc" && find postfix sendmail -type f | sort)
mapfile -t units < <(cd "$top/etc/systemd" && ls -- *.service)
mapfile -t programs < <(
	for f in "$top"/*/CMakeLists.txt; do
		case ${f#"$top"/} in libgw/* | test/* | bench/* | docs/* | etc/*) continue ;; esac
		grep -ho 'add_executable( *[A-Za-z0-9_.-]\+' "$f" | sed 's/add_executable( *//'
	done | sort -u
)
[ ${#pages[@]} -ge 8 ] || bad "found only ${#pages[@]} man pages in docs/man"
[ ${#samples[@]} -ge 3 ] || bad "found only ${#samples[@]} sample files in etc/"
[ ${#units[@]} -ge 2 ] || bad "found only ${#units[@]} systemd units in etc/systemd"
[ ${#programs[@]} -ge 4 ] || bad "found only ${#programs[@]} programs (${programs[*]})"
echo "tree: ${#pages[@]} man pages, ${#samples[@]} samples, ${#snippets[@]} snippets, ${#units[@]} units, programs: ${programs[*]}"

# Every program has a man page in section 1 or 8 (so the install of pages covers it).
for p in "${programs[@]}"; do
	if [ -f "$top/docs/man/$p.1" ] || [ -f "$top/docs/man/$p.8" ]; then
		ok "$p has a man page"
	else
		bad "$p has no man page docs/man/$p.1 or .8"
	fi
done

# --- prefix /usr/local --------------------------------------------------------------

check_common() { # check_common ROOT PREFIX-REL
	local root=$1 pre=$2 p u line exe
	for p in "${pages[@]}"; do
		have "$root" "$pre/share/man/man${p##*.}/$p" "man page"
	done
	for p in "${samples[@]}"; do
		have "$root" "$pre/share/doc/gw/examples/$p" "sample"
	done
	for p in "${snippets[@]}"; do
		have "$root" "$pre/share/doc/gw/examples/$p" "MTA snippet"
	done
	for p in "${programs[@]}"; do
		if [ -x "$root/$pre/bin/$p" ] || [ -x "$root/$pre/sbin/$p" ]; then
			ok "program installed: $p"
		else
			bad "program not installed in $pre/bin or $pre/sbin: $p"
		fi
	done
	for u in "${units[@]}"; do
		have "$root" "$pre/lib/systemd/system/$u" "systemd unit"
		[ -f "$root/$pre/lib/systemd/system/$u" ] || continue
		# Each program an Exec line runs is the installed one (not the sample's /usr/local/sbin).
		while read -r line; do
			exe=${line#*=}
			exe=${exe#[-+@!]}
			exe=${exe%% *}
			case $exe in
			/bin/* | /usr/bin/install) ;;
			*)
				if [ "${exe#/"$pre"/}" != "$exe" ] && [ -x "$root$exe" ]; then
					ok "$u runs $exe"
				else
					bad "$u: $line names $exe, want an installed program under /$pre"
				fi
				;;
			esac
		done < <(grep -E '^Exec[A-Za-z]*=' "$root/$pre/lib/systemd/system/$u")
	done
}

install_to "$work/local" /usr/local
check_common "$work/local" usr/local
if [ -e "$work/local/etc" ] || [ -e "$work/local/usr/local/etc" ]; then
	bad "prefix /usr/local: nothing may go to etc ($(cd "$work/local" && find . -path '*etc*' | head -3))"
else
	ok "prefix /usr/local: samples only under share/doc, nothing in etc"
fi

# --- prefix /usr: samples in /etc/gw, never overwritten -------------------------------

install_to "$work/usr" /usr
check_common "$work/usr" usr
for p in "${samples[@]}"; do
	have "$work/usr" "etc/gw/$p" "sample in /etc/gw"
	cmp -s "$top/etc/$p" "$work/usr/etc/gw/$p" || bad "/etc/gw/$p differs from etc/$p"
done
echo "# the operator's own" >>"$work/usr/etc/gw/gw.conf"
cp "$work/usr/etc/gw/gw.conf" "$work/mine.conf"
rm "$work/usr/etc/gw/routes"
install_to "$work/usr" /usr
if cmp -s "$work/mine.conf" "$work/usr/etc/gw/gw.conf"; then
	ok "a second install keeps the operator's /etc/gw/gw.conf"
else
	bad "a second install overwrote /etc/gw/gw.conf"
fi
have "$work/usr" etc/gw/routes "a missing /etc/gw file is installed again"
grep -q 'Kept: .*/etc/gw/gw.conf' "$work/install.log" && ok "the install says it kept gw.conf" ||
	bad "the install does not say it kept /etc/gw/gw.conf"

if [ "$fails" -ne 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all checks passed"
