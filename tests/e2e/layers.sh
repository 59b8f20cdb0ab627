#!/usr/bin/env bash
# layers.sh - the libraries only link downwards (docs/ARCHITECTURE.md).
#
# For every static library, each pgf symbol it uses but does not define
# must be defined by a library of a lower layer it is allowed to use: the
# fake server never reaches into the harness, the checker and the reports
# know no session, and nothing links up into the driver (the weak
# pgf_session_spec_json hook once made the checker do just that).
set -u
: "${PGF_BUILD:?build dir}"
command -v nm >/dev/null || { echo "FAIL: nm is not installed"; exit 1; }
declare -A lib=(
    [base]=base/libpgf_base.a [proto]=fakes/proto/libpgf_proto.a
    [fault]=fakes/fault/libpgf_fault.a [server]=fakes/server/libpgf_server.a
    [session]=harness/session/libpgf_session.a [checker]=harness/checker/libpgf_checker.a
    [reports]=reports/libpgf_reports.a [driver]=harness/driver/libpgf_driver.a
    [proxy]=fakes/proxy/libpgf_proxy.a
)
declare -A allowed=(
    [base]="" [proto]="base" [fault]="base" [server]="base proto fault"
    [proxy]="base proto fault" [session]="base" [checker]="base" [reports]="base"
    [driver]="base proto fault server proxy session checker reports"
)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-layers.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fails=0
for m in "${!lib[@]}"; do
    a="$PGF_BUILD/${lib[$m]}"
    [ -f "$a" ] || { echo "FAIL: $a not built"; fails=$((fails + 1)); continue; }
    nm --defined-only --format=posix "$a" 2>/dev/null | awk 'NF >= 2 && $2 ~ /^[TDRBC]$/ {print $1}' |
        grep '^pgf' | sort -u >"$TMP/def.$m"
done
for m in "${!lib[@]}"; do
    nm -u --format=posix "$PGF_BUILD/${lib[$m]}" 2>/dev/null | awk '{print $1}' | grep '^pgf' |
        sort -u | comm -23 - "$TMP/def.$m" >"$TMP/undef.$m"
    : >"$TMP/ok.$m"
    for d in ${allowed[$m]}; do cat "$TMP/def.$d" >>"$TMP/ok.$m"; done
    sort -u -o "$TMP/ok.$m" "$TMP/ok.$m"
    comm -23 "$TMP/undef.$m" "$TMP/ok.$m" >"$TMP/bad.$m"
    while read -r sym; do
        owner=""
        for d in "${!lib[@]}"; do grep -qx "$sym" "$TMP/def.$d" && owner="$owner $d"; done
        echo "FAIL: $m uses $sym from${owner:- nowhere} (allowed: ${allowed[$m]:-nothing})"
        fails=$((fails + 1))
    done <"$TMP/bad.$m"
done
[ "$fails" -eq 0 ] || { echo "$fails upward or unresolved link(s)"; exit 1; }
echo "ok: ${#lib[@]} libraries, every pgf symbol resolved downwards"
