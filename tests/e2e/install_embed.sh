#!/usr/bin/env bash
# install_embed.sh - pgfault as an installed, embeddable library.
#
# Installs the build into a temporary prefix (cmake --install --prefix),
# checks the layout (binary, static libraries, only public headers, each
# compiling on its own, pgfault.pc, the CMake package, the man page, the
# scenarios), then builds examples/embed/ OUT of the tree twice - with
# pkg-config (its Makefile) and with find_package(pgfault) (its
# CMakeLists.txt) - and runs it: a CUnit suite that starts the fake server
# in-process on a free port with one fault rule and sees libpq get the
# injected 28P01. A missing tool (pkg-config, make, cmake, groff) is a failure.
set -u
: "${PGFAULT:?path to the pgfault binary}" "${PGF_SRC:?source dir}" "${PGF_BUILD:?build dir}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
run() { # run DESCRIPTION -- command... (output kept in $TMP/log, shown on failure)
    local what=$1
    shift 2
    if ! "$@" >"$TMP/log" 2>&1; then
        fail "$what (exit $?)"
        sed 's/^/  | /' "$TMP/log" | tail -30
        return 1
    fi
}
for tool in pkg-config make cmake groff; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done
[ "$fails" -eq 0 ] || exit 1
# The compiler the build used (a sanitized build's libraries need it, and
# pgfault.pc then carries the -fsanitize flags).
CC=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$PGF_BUILD/CMakeCache.txt")
CC=${CC:-cc}

PREFIX="$TMP/prefix with space"
run "cmake --install" -- cmake --install "$PGF_BUILD" --prefix "$PREFIX" || exit 1

# --- the layout -------------------------------------------------------------
ver=$(sed -n 's/^#define PGF_VERSION "\(.*\)"$/\1/p' "$PREFIX/include/pgfault/version.h")
[ -n "$ver" ] || fail "installed pgfault/version.h has no PGF_VERSION"
[ "$("$PREFIX/bin/pgfault" --version)" = "pgfault $ver" ] ||
    fail "installed binary says '$("$PREFIX/bin/pgfault" --version)', version.h says $ver"
for m in base proto fault server session checker reports driver; do
    [ -f "$PREFIX/lib/libpgf_$m.a" ] || fail "lib/libpgf_$m.a not installed"
done
for f in lib/pkgconfig/pgfault.pc lib/cmake/pgfault/pgfaultConfig.cmake \
    lib/cmake/pgfault/pgfaultConfigVersion.cmake share/man/man1/pgfault.1 \
    share/pgfault/scenarios/incident.yaml share/doc/pgfault/README.md; do
    [ -f "$PREFIX/$f" ] || fail "$f not installed"
done
# Only the public headers, exactly those of include/pgfault/ (+ version.h).
(cd "$PGF_SRC/include" && ls pgfault/*.h; echo pgfault/version.h) | sort >"$TMP/want"
(cd "$PREFIX/include" && find . -type f | sed 's|^\./||') | sort >"$TMP/got"
diff -u "$TMP/want" "$TMP/got" >"$TMP/log" || {
    fail "installed headers differ from include/pgfault/"
    sed 's/^/  | /' "$TMP/log"
}
# The man page renders without warnings and has what --help has.
MAN="$PREFIX/share/man/man1/pgfault.1"
if [ -f "$MAN" ]; then
    groff -ww -z -man "$MAN" >"$TMP/log" 2>&1 && [ ! -s "$TMP/log" ] || {
        fail "groff warns about pgfault.1"
        sed 's/^/  | /' "$TMP/log" | head -10
    }
    MANTEXT=$(groff -man -Tutf8 -P-cbou "$MAN" 2>/dev/null | tr -s ' \n' '  ')
    for sub in serve faults run replay check spec url; do
        for opt in $("$PREFIX/bin/pgfault" "$sub" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
            case "$MANTEXT" in
            *"$opt"*) ;;
            *) fail "man page lacks $sub's $opt" ;;
            esac
        done
    done
fi
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
[ "$(pkg-config --modversion pgfault)" = "$ver" ] || fail "pkg-config --modversion pgfault"
# Every public header compiles on its own, with the flags pkg-config gives.
for h in "$PREFIX"/include/pgfault/*.h; do
    printf '#include "pgfault/%s"\n' "$(basename "$h")" >"$TMP/h.c"
    # eval: pkg-config escapes the space in the prefix for a shell to read
    eval "\"\$CC\" -std=c11 -Wall -Wextra -Werror -fsyntax-only $(pkg-config --cflags pgfault) \
        \"\$TMP/h.c\"" >"$TMP/log" 2>&1 || {
        fail "pgfault/$(basename "$h") does not compile on its own"
        sed 's/^/  | /' "$TMP/log" | head -10
    }
done

# --- the example, out of the tree, with pkg-config --------------------------
cp -r "$PGF_SRC/examples/embed" "$TMP/pc"
if run "example: make (pkg-config)" -- make -C "$TMP/pc" CC="$CC"; then
    if run "example (pkg-config build) runs" -- "$TMP/pc/embed_test"; then
        grep -q "first_login_gets_28P01 ...passed" "$TMP/log" || fail "pkg-config build: 28P01 test"
    fi
fi

# --- the example, out of the tree, with find_package(pgfault) ---------------
cp -r "$PGF_SRC/examples/embed" "$TMP/cm"
rm -f "$TMP/cm/Makefile"
if run "example: cmake configure (find_package)" -- cmake -S "$TMP/cm" -B "$TMP/cm/build" \
    -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_COMPILER="$CC" &&
    run "example: cmake build" -- cmake --build "$TMP/cm/build"; then
    if run "example (find_package build) runs" -- "$TMP/cm/build/embed_test"; then
        grep -q "second_login_works ...passed" "$TMP/log" || fail "find_package build: tests"
    fi
fi

if [ "$fails" -ne 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "ok: installed $ver into a temp prefix; examples/embed built with pkg-config and find_package, 28P01 seen"
