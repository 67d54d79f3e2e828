# shellcheck shell=bash
# prom_lint.sh - checks of a Prometheus text-format scrape (version 0.0.4) for the tests of
# gw-milter's and gw-lmtpd's metrics. Source it (bash); it defines functions only.
#
#   prom_malformed FILE PREFIX [LABEL_VALUE_RE] [VALUE_RE]
#       print every line that is neither "# HELP|TYPE PREFIXname text" nor a sample
#       "PREFIXname[{label="value"}] value"; names are [a-z_]+ after PREFIX, at most one
#       label. LABEL_VALUE_RE defaults to [a-zA-Z0-9.+]+ (a histogram's le="0.00025",
#       le="+Inf"), VALUE_RE to a signed decimal or float; a caller narrows them.
#   prom_untyped FILE
#       print the name of every sample with no TYPE line before it; a histogram's TYPE
#       covers its _bucket, _sum and _count samples.
# Does not check: HELP text, label names, the order of a histogram's buckets.

prom_malformed() {
	local f=$1 pre=$2 lv=${3:-'[a-zA-Z0-9.+]+'} val=${4:-'-?[0-9][0-9.e+-]*'}
	grep -vE "^# (HELP|TYPE) ${pre}[a-z_]+ .+\$|^${pre}[a-z_]+(\\{[a-z]+=\"${lv}\"\\})? ${val}\$" "$f" || true
}

prom_untyped() {
	awk '/^# TYPE/ { t[$3] = 1; if ($4 == "histogram") { t[$3 "_bucket"] = 1; t[$3 "_sum"] = 1; t[$3 "_count"] = 1 } }
		/^[a-z]/ { n = $1; sub(/\{.*/, "", n); if (!(n in t)) print n }' "$1"
}
