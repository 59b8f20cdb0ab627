#!/usr/bin/env bash
# url_warnings.sh - `pgfault url` catches the mistakes it exists for,
# against a live `pgfault serve` whose role has a password full of URL
# specials:
#  - POSTGRES_HOST=127.0.0.1:PORT: an error naming the fix, exit 2;
#  - a raw '@' (or '/') in DATABASE_URL's password: an error, exit 2;
#  - POSTGRES_PASSWORD needing percent-encoding: a warning with the encoded
#    form, masked except for the characters that need encoding; --check
#    with the variables is healthy, --check --as-url (the URL a service
#    pastes together) is not, exit 1; the encoded DATABASE_URL is healthy;
#  - the password itself never appears in any output.
set -u
: "${PGFAULT:?path to the pgfault binary}" "${PGF_SRC:?source dir}"
. "$PGF_SRC/tests/e2e/serve_lib.bash"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-url.XXXXXX")
serve_trap "$TMP"
PW='p@ss:w/rd+%1'
ENC='p%40ss%3Aw%2Frd%2B%251'
start_serve "$TMP" --user "svc:$PW:scram-sha-256"
fails=0
bad() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
url() { # NAME ENV... -- ARGS...: run pgfault url in a clean environment
    local name=$1
    shift
    local envs=()
    while [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    env -i "${envs[@]}" "$PGFAULT" url --timeout 5000 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
    echo $?
}
VARS=(POSTGRES_HOST=127.0.0.1 "POSTGRES_PORT=$SERVE_PORT" POSTGRES_DB=app POSTGRES_USER=svc
    "POSTGRES_PASSWORD=$PW")

rc=$(url hostport POSTGRES_HOST="127.0.0.1:$SERVE_PORT" POSTGRES_DB=app POSTGRES_USER=svc \
    "POSTGRES_PASSWORD=$PW" --)
[ "$rc" = 2 ] || bad "POSTGRES_HOST=HOST:PORT: exit $rc, want 2"
grep -qF "error: POSTGRES_HOST=127.0.0.1:$SERVE_PORT holds a port" "$TMP/hostport.err" &&
    grep -qF "Set POSTGRES_HOST=127.0.0.1 and POSTGRES_PORT=$SERVE_PORT" "$TMP/hostport.err" ||
    bad "POSTGRES_HOST=HOST:PORT: $(cat "$TMP/hostport.err")"

rc=$(url rawat "DATABASE_URL=postgresql://svc:$PW@127.0.0.1:$SERVE_PORT/app" --)
[ "$rc" = 2 ] || bad "raw password in DATABASE_URL: exit $rc, want 2"
grep -qF "a raw '@' in the password must be written %40" "$TMP/rawat.err" ||
    bad "raw '@': $(cat "$TMP/rawat.err")"

rc=$(url vars "${VARS[@]}" -- --check)
[ "$rc" = 0 ] || bad "--check with the variables: exit $rc, want 0: $(cat "$TMP/vars.out")"
grep -q "^check     healthy" "$TMP/vars.out" || bad "--check: $(cat "$TMP/vars.out")"
grep -qF "warning: POSTGRES_PASSWORD contains '@', ':', '/', '+', '%'" "$TMP/vars.err" ||
    bad "no percent-encoding warning: $(cat "$TMP/vars.err")"
grep -qF "write it as *%40**%3A*%2F**%2B%25*" "$TMP/vars.err" ||
    bad "masked encoded form missing: $(cat "$TMP/vars.err")"

rc=$(url asurl "${VARS[@]}" -- --check --as-url)
[ "$rc" = 1 ] || bad "--check --as-url: exit $rc, want 1 (the pasted URL cannot work)"
grep -q "^check     unhealthy" "$TMP/asurl.out" || bad "--as-url: $(cat "$TMP/asurl.out")"

rc=$(url encoded "DATABASE_URL=postgresql://svc:$ENC@127.0.0.1:$SERVE_PORT/app" -- --check)
[ "$rc" = 0 ] || bad "encoded DATABASE_URL --check: exit $rc: $(cat "$TMP/encoded.out" "$TMP/encoded.err")"
[ ! -s "$TMP/encoded.err" ] || bad "encoded DATABASE_URL warned: $(cat "$TMP/encoded.err")"

# the URLs printed for the variables are the encoded ones (masked), and
# the password never shows anywhere
grep -qF "libpq     postgresql://svc:****@127.0.0.1:$SERVE_PORT/app" "$TMP/vars.out" ||
    bad "libpq URL line: $(cat "$TMP/vars.out")"
for f in "$TMP"/*.out "$TMP"/*.err; do
    case $f in */serve.*) continue ;; esac
    grep -qF -e "$PW" -e "$ENC" "$f" && bad "$(basename "$f") shows the password"
done
stop_serve "$TMP"
[ "$fails" = 0 ] || exit 1
echo "ok: url warnings for host:port, raw '@', encoding; --check --as-url"
