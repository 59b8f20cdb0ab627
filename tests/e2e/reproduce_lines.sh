#!/usr/bin/env bash
# reproduce_lines.sh - every reproduce line a failing run prints anywhere
# (console, junit.xml, report.json, report.html) is run, and each must
# reproduce the failure: exit 1 with the same violation kind failing and,
# in sim mode, the same history digest.
#
# The failing run here is a scenario FILE that carries the bug and the
# sizes itself (written by --explain), so the printed command needs nothing
# but the file, the seed and the mode. A run whose failure comes from
# command-line overrides (--bugs, --sessions, --iterations, --duration)
# prints lines that drop them; that case belongs here as soon as the
# reproduce commands carry the overrides (see the report of issue 15).
set -u
: "${PGFAULT:?path to the pgfault binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pgf-e2e-repro.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
"$PGFAULT" run --scenario incident --bugs close-frees-during-connect --sessions 12 \
    --iterations 6 --explain | sed 's/^  min_checks: 200$/  min_checks: 20/' >"$TMP/incident-bug.yaml"
"$PGFAULT" run "$TMP/incident-bug.yaml" --out "$TMP/run" >"$TMP/console.txt" 2>&1
rc=$?
[ "$rc" = 1 ] || { cat "$TMP/console.txt"; echo "FAIL: run exit $rc, want 1"; exit 1; }
# not exec: the EXIT trap must still remove $TMP
/usr/bin/python3 - "$PGFAULT" "$TMP" <<'PYEOF'
import html, json, os, re, shlex, subprocess, sys
pgfault, tmp = sys.argv[1], sys.argv[2]
run = os.path.join(tmp, "run")
lines = {}  # command -> where it was printed

def add(cmd, where):
    cmd = cmd.strip()
    if cmd:
        lines.setdefault(cmd, []).append(where)

for l in open(os.path.join(tmp, "console.txt")):
    m = re.match(r"\s*(?:reproduce|replay|or):\s+(pgfault .*)$", l)
    if m:
        add(m.group(1), "console")
rep = json.load(open(os.path.join(run, "report.json")))
add(rep["run"].get("replay_command") or "", "report.json run")
for s in rep["scenarios"]:
    add(s.get("replay_command") or "", "report.json scenario")
junit = open(os.path.join(run, "junit.xml")).read()
for m in re.finditer(r'<property name="replay" value="([^"]*)"', junit):
    add(html.unescape(m.group(1)), "junit property")
for m in re.finditer(r"^replay: (pgfault .*)$", junit, re.M):
    add(html.unescape(m.group(1)), "junit failure")
page = open(os.path.join(run, "report.html")).read()
for m in re.finditer(r"<pre>(pgfault [^<]*)</pre>", page):
    add(html.unescape(m.group(1)), "report.html")
if not lines:
    sys.exit("FAIL: no reproduce line found anywhere")

def digest_of(out):
    m = re.search(r"digest ([0-9a-f]{12})", out)
    return m.group(1) if m else None

want_digest = digest_of(open(os.path.join(tmp, "console.txt")).read())
failures = 0
for i, (cmd, where) in enumerate(sorted(lines.items())):
    argv = shlex.split(cmd)
    assert argv[0] == "pgfault", cmd
    argv[0] = pgfault
    if "--out" not in argv:  # keep the reproductions apart
        argv += ["--out", os.path.join(tmp, f"repro{i}")]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=tmp)
    out_dir = argv[argv.index("--out") + 1]
    kinds = []
    try:
        r = json.load(open(os.path.join(out_dir, "report.json")))
        kinds = [c.get("kind") for s in r["scenarios"] for c in s["checks"] if not c["passed"]]
    except (OSError, ValueError):
        pass
    problems = []
    if p.returncode != 1:
        problems.append(f"exit {p.returncode}, want 1")
    if "illegal_transition" not in kinds:
        problems.append(f"illegal_transition not among the failed checks {kinds}")
    d = digest_of(p.stdout)
    if want_digest and d != want_digest:
        problems.append(f"history digest {d}, want {want_digest}")
    print(f"{'FAIL' if problems else 'ok'}: {cmd}  (printed in: {', '.join(sorted(set(where)))})")
    for x in problems:
        print(f"    {x}")
    failures += bool(problems)
sys.exit(1 if failures else 0)
PYEOF
exit $?
