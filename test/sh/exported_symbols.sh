#!/usr/bin/env bash
# libgw.so exports exactly what the installed headers declare. Installs the
# build into a private prefix, collects the functions (gcc -aux-info) and the
# extern variables (preprocessed text) declared in include/gw/*.h, and compares
# them with `nm -D --defined-only` of the installed libgw.so, both ways:
# nothing internal (pp_*, rh_*, lm_*, gwu_*, gw_net_*, gw_tls_*, ...) is
# exported, and every public declaration is there to link against.
set -euo pipefail
bindir=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v gcc >/dev/null || fail "gcc is needed for -aux-info"

cmake --install "$bindir" --prefix "$work/prefix" >/dev/null
inc=$work/prefix/include
lib=$(ls "$work"/prefix/lib*/libgw.so | head -n1)
[ -f "$lib" ] || fail "libgw.so not installed"
headers=("$inc"/gw/*.h)
[ ${#headers[@]} -gt 5 ] || fail "headers not installed under $inc/gw"

for h in "${headers[@]}"; do echo "#include <gw/${h##*/}>"; done >"$work/all.c"

# Functions: gcc lists every prototype it saw with its file; keep the ones
# from the installed headers that are not static, and take the name before '('.
gcc -std=gnu11 -fsyntax-only -aux-info "$work/aux" -I"$inc" "$work/all.c"
grep -F "/* $inc/gw/" "$work/aux" | sed 's|^/\*[^*]*\*/ *||' | grep -v '^static ' |
  perl -ne 'print "$1\n" if /^[^(]*?\b([A-Za-z_]\w*) \(/' >"$work/declared"

# Variables: extern declarations without '(' in the preprocessed headers
# (attributes removed first: GW_API expands to one).
gcc -std=gnu11 -E -I"$inc" "$work/all.c" | awk -v inc="$inc/gw/" '
  /^# [0-9]+ "/ { keep = index($3, "\"" inc) == 1; next }
  keep' | perl -0777 -ne 's/__attribute__\s*\(\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)\)//g;
    for (split /;/) { s/\s+/ /g; print "$1\n" if /(?:^|[ }])extern ([^(]*?)\s*$/ && $1 =~ /([A-Za-z_]\w*)\s*$/ and $_ = $1 }' \
  >>"$work/declared"
perl -0777 -ne 'exit 1 unless /\bgw_clock_monotonic\b/' "$work/declared" || fail "the variable gw_clock_monotonic was not found among the declarations"
sort -u "$work/declared" -o "$work/declared"

# Exported: everything defined in the dynamic symbol table, less what the
# toolchain adds by itself (linker markers; ASan's ODR indicators for globals).
nm -D --defined-only "$lib" | awk '{print $NF}' |
  grep -Ev '^(_init|_fini|_edata|_end|__bss_start|__odr_asan\..*)$' | sort -u >"$work/exported"

extra=$(comm -23 "$work/exported" "$work/declared")
missing=$(comm -13 "$work/exported" "$work/declared")
[ -z "$extra" ] || fail "exported by libgw.so but not declared in include/gw (mark internals hidden, not GW_API):
$extra"
[ -z "$missing" ] || fail "declared in include/gw but not exported by libgw.so (missing GW_API or definition):
$missing"
echo "exported symbols: $(wc -l <"$work/exported") match the public headers"
