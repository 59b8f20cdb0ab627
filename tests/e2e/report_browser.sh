#!/usr/bin/env bash
# report_browser.sh - a failing run's report.html in headless Chromium at
# 1400 px and at 390 px wide. Fails on:
#  - a console message or an uncaught error (Chromium's log), or the page's
#    own script not finishing (data-rendered);
#  - horizontal overflow: the page wider than the viewport;
#  - a session with a violation (every `first` session of `pgfault check
#    --json` on the run's history) missing from the timeline.
# The layout facts come from a probe script this test appends to a copy of
# the page (the report itself carries no test code); the probe's findings
# are read back from --dump-dom. Negative controls prove the checks bite: a
# page with a too-wide element, and a page with a failing row removed.
# Screenshots at both widths are written too (kept in $PGF_SHOT_DIR when
# set, for a person to look at). A missing chromium FAILS the test.
set -u
: "${PGFAULT:?path to the pgfault binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-browser.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PY=/usr/bin/python3
fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
command -v chromium >/dev/null || { echo "FAIL: chromium missing (scripts/install-deps)"; exit 1; }

"$PGFAULT" run --scenario incident --mode sim --sessions 8 --iterations 5 \
    --bugs close-frees-during-connect \
    --out "$TMP/run" >"$TMP/run.log" 2>&1
rc=$?
[ "$rc" = 1 ] || { cat "$TMP/run.log"; echo "FAIL: run exit $rc, want 1"; exit 1; }
"$PGFAULT" check "$TMP/run/history.jsonl" --json >"$TMP/check.json"
"$PY" - "$TMP/check.json" >"$TMP/failing" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(" ".join(sorted({str(f["session"]) for f in r["first"] if f.get("session") is not None}, key=int)))
PYEOF
[ -s "$TMP/failing" ] || { echo "FAIL: the checker found no failing session"; exit 1; }

# Headless Chromium will not make a window narrower than 500 px, so the page
# is measured inside an iframe of the exact width; the probe (appended to
# a copy of the page) posts what it found to the frame page, whose DOM
# --dump-dom prints (--virtual-time-budget lets the message arrive first).
PROBE='<script>(function(){var d=document.documentElement,s=[];
document.querySelectorAll("#timeline g.tlrow").forEach(function(g){s.push(g.getAttribute("data-session"));});
parent.postMessage({"data-probe-overflow":String(Math.max(d.scrollWidth,document.body.scrollWidth)-window.innerWidth),
"data-probe-width":String(window.innerWidth),"data-probe-sessions":s.join(" "),
"data-probe-rendered":document.body.dataset.rendered||"","data-probe-error":d.dataset.error||""},"*");})();</script>'

frame() { # PAGE WIDTH DST: a page showing PAGE in an iframe WIDTH px wide
    cat >"$3" <<HTML
<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe src="$(basename "$1")" style="border:0;width:$2px;height:1000px"></iframe>
<script>window.addEventListener("message",function(e){var d=document.documentElement;
for(var k in e.data)d.setAttribute(k,e.data[k]);});</script></body></html>
HTML
}

probe_copy() { # SRC DST [OLD NEW]...: the page (each OLD replaced by NEW) plus the probe
    local src=$1 dst=$2
    shift 2
    "$PY" - "$src" "$dst" "$PROBE" "$@" <<'PYEOF'
import sys
src, dst, probe, pairs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
page = open(src, encoding="utf-8").read()
for old, new in zip(pairs[0::2], pairs[1::2]):
    assert old in page, f"{old!r} not in the page"
    page = page.replace(old, new, 1)
open(dst, "w", encoding="utf-8").write(page.replace("</body>", probe + "</body>"))
PYEOF
}

chrome() { # URL WIDTH OUTPREFIX MODE(dom|shot)
    local flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
        --disable-background-networking --disable-component-update --disable-sync
        --disable-dev-shm-usage "--user-data-dir=$TMP/profile-$2-$4" --enable-logging=stderr --v=0
        "--window-size=$2,1000" --hide-scrollbars)
    if [ "$4" = dom ]; then
        timeout -k 10 90 chromium "${flags[@]}" --virtual-time-budget=10000 --dump-dom "$1" \
            >"$3.dom" 2>"$3.log"
    else
        timeout -k 10 90 chromium "${flags[@]}" "--screenshot=$3.png" "$1" >/dev/null 2>"$3.log"
    fi
}

judge() { # DOMFILE LOGFILE WIDTH -> prints problems, one per line
    "$PY" - "$1" "$2" "$3" "$(cat "$TMP/failing")" <<'PYEOF'
import re, sys
dom, log, width, failing = open(sys.argv[1]).read(), open(sys.argv[2]).read(), int(sys.argv[3]), sys.argv[4].split()
def attr(name):
    m = re.search(r'<html[^>]*\s%s="([^"]*)"' % name, dom)
    return m.group(1) if m else None
for line in log.splitlines():
    if re.search(r":CONSOLE[:(]", line) or "Uncaught" in line:
        print("console:", line.strip()[:300])
if attr("data-probe-rendered") != "ok":
    print("the page's script did not finish (no data-rendered), or the probe did not report")
if attr("data-probe-error"):
    print("page error:", attr("data-probe-error"))
if attr("data-probe-width") != str(width):
    print(f"viewport is {attr('data-probe-width')} px, want {width}")
ov = attr("data-probe-overflow")
if ov is None or int(ov) > 0:
    print(f"horizontal overflow: the page is {ov} px wider than the {width} px viewport")
shown = set((attr("data-probe-sessions") or "").split())
missing = [s for s in failing if s not in shown]
if missing:
    print(f"failing sessions missing from the timeline: {' '.join(missing[:20])} ({len(missing)} of {len(failing)})")
PYEOF
}

for w in 1400 390; do
    probe_copy "$TMP/run/report.html" "$TMP/probe.html"
    frame "$TMP/probe.html" "$w" "$TMP/frame$w.html"
    chrome "file://$TMP/frame$w.html" "$w" "$TMP/p$w" dom
    problems=$(judge "$TMP/p$w.dom" "$TMP/p$w.log" "$w")
    [ -z "$problems" ] || fail "at $w px: $problems"
    frame "$TMP/run/report.html" "$w" "$TMP/run/frame$w.html"
    chrome "file://$TMP/run/frame$w.html" "$w" "$TMP/shot$w" shot
    [ -s "$TMP/shot$w.png" ] || fail "at $w px: no screenshot"
    if [ -n "${PGF_SHOT_DIR:-}" ]; then
        mkdir -p "$PGF_SHOT_DIR" && cp "$TMP/shot$w.png" "$PGF_SHOT_DIR/report-$w.png"
    fi
done
[ "$fails" = 0 ] && echo "failing sessions: $(wc -w <"$TMP/failing"), all on the timeline at 1400 and 390 px"

# Negative controls, in one page: the same judge must catch an element wider
# than the viewport, a failing session that is not drawn, and a console error.
first=$(cut -d' ' -f1 "$TMP/failing")
probe_copy "$TMP/run/report.html" "$TMP/bad.html" \
    '<main>' '<main><div style="width:2000px;height:4px;background:red"></div>' \
    "class=\"tlrow failing\" data-session=\"$first\"" 'class="gone"' \
    '</main>' '</main><script>console.error("boom")</script>'
frame "$TMP/bad.html" 390 "$TMP/frameb.html"
chrome "file://$TMP/frameb.html" 390 "$TMP/bad" dom
judge "$TMP/bad.dom" "$TMP/bad.log" 390 >"$TMP/bad.judged"
grep -q "horizontal overflow" "$TMP/bad.judged" ||
    fail "negative control: a 2000 px element at 390 px was not reported as overflow"
grep -q "missing from the timeline: $first" "$TMP/bad.judged" ||
    fail "negative control: failing session $first removed from the timeline was not noticed"
grep -q '^console:.*boom' "$TMP/bad.judged" ||
    fail "negative control: a console.error was not in Chromium's log"

[ "$fails" = 0 ] || exit 1
echo "ok: report.html renders at 1400 and 390 px without errors or overflow, every failing session drawn"
