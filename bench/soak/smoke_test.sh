#!/bin/bash
# bench/soak/smoke_test.sh - ctest bench_soak_smoke (~20 s): bench/soak/run
# and hour.sh must produce real measurements, not just run. Tiny settings
# (1 and 2 sessions, half-second loads, a 6 s flatness run and a 6 s soak);
# the figures themselves are only ever taken by `make bench`.
# Env: BUILD_DIR (the build with harness/cli/pgfault).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "bench soak smoke: $*" >&2; exit 1; }
[ -x "$BUILD_DIR/harness/cli/pgfault" ] || fail "no pgfault in BUILD_DIR=$BUILD_DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3

# the line fit and the warm-up cut, on a known line: 2 MB/min after 10 s,
# a 500 MB step during the warm-up that must not count
$py - "$here/run" "$tmp" <<'PY' || fail "fit_slope / external_scenario"
import importlib.machinery, importlib.util, sys, os
loader = importlib.machinery.SourceFileLoader("soakrun", sys.argv[1])
spec = importlib.util.spec_from_loader("soakrun", loader)
m = importlib.util.module_from_spec(spec); loader.exec_module(m)
kb_per_s = 2 * 1024 / 60.0
samples = [(t, (0 if t < 10 else 500 * 1024) + 1000 + kb_per_s * t) for t in range(0, 120)]
slope, n = m.fit_slope(samples, 10, 119)
assert abs(slope - 2.0) < 1e-6 and n == 110, (slope, n)
slope, n = m.fit_slope(samples, 0, 119)
assert slope > 100, slope  # the step is in the warm-up for a reason
assert m.fit_slope(samples[:2], 0, 10) == (None, 2)
p = os.path.join(sys.argv[2], "x.yaml")  # in $tmp: the trap removes it
m.external_scenario(p, "host=/tmp/d port=5432 user=postgres dbname=postgres")
y = open(p).read()
assert 'server:\n  external: "host=/tmp/d port=5432' in y and "users:" not in y and "transport" not in y, y
assert "workload:" in y and "sessions:" in y, y
PY

# bench/soak/ab: two variants (one with an extra option and a variable)
# and the shared baseline, 2 rounds: every run measured, the table printed
B="$BUILD_DIR/harness/cli/pgfault"
"$here/ab" --sessions 2 --seconds 0.5 --rounds 2 --arg z=--history-zstd --env z=PGF_AB_SMOKE=1 \
    --json "$tmp/ab.json" a="$B" z="$B" >"$tmp/ab.md" 2>"$tmp/ab.err" ||
    fail "ab failed: $(tail -5 "$tmp/ab.err")"
grep -q '^| z | ' "$tmp/ab.md" && grep -q '^| off (--no-check) | ' "$tmp/ab.md" ||
    fail "ab printed no table: $(cat "$tmp/ab.md")"
$py - "$tmp/ab.json" <<'PY' || fail "ab.json lacks a measurement: $(head -c 2000 "$tmp/ab.json")"
import json, sys
r = json.load(open(sys.argv[1]))
runs = r["runs"]
assert sorted((x["label"], x["round"]) for x in runs) == [
    ("a", 1), ("a", 2), ("off", 1), ("off", 2), ("z", 1), ("z", 2)], runs
for x in runs:
    assert x["exit"] == 0 and x["checks"] > 0 and x["cpu_us_per_check_total"] > 0, x
    assert (x["checker"] == "off") == (x["label"] == "off"), x
assert r["variants"]["z"]["args"] == ["--history-zstd"] and r["variants"]["z"]["env"] == {"PGF_AB_SMOKE": "1"}, r
assert r["medians"]["a"]["drain_us_per_check"] is not None, r["medians"]
PY
if out=$("$here/ab" --rounds 0 a="$B" 2>&1); then fail "ab accepted --rounds 0"; fi
grep -q -- "--rounds 0: at least 1" <<<"$out" || fail "ab --rounds 0 not named: $out"
if out=$("$here/ab" a="$tmp/nope" 2>&1); then fail "ab accepted a missing binary"; fi
grep -q "$tmp/nope is not an executable pgfault" <<<"$out" || fail "ab missing binary not named: $out"

# bad input: a build without pgfault is exit 2 naming it
if out=$("$here/run" "$tmp/nobuild" 2>&1); then fail "run accepted a missing build"; fi
grep -q "$tmp/nobuild/harness/cli/pgfault not built" <<<"$out" || fail "missing build not named: $out"

# bad input: a setting that is not a number is exit 2 naming it, before anything runs
if out=$(BENCH_SOAK_LONG_SECONDS=abc "$here/run" "$BUILD_DIR" 2>&1); then fail "run accepted BENCH_SOAK_LONG_SECONDS=abc"; fi
grep -q "BENCH_SOAK_LONG_SECONDS='abc': expected a number" <<<"$out" || fail "bad setting not named: $out"
if out=$(BENCH_SOAK_SESSIONS=1,x "$here/run" "$BUILD_DIR" 2>&1); then fail "run accepted BENCH_SOAK_SESSIONS=1,x"; fi
grep -q "BENCH_SOAK_SESSIONS='1,x'" <<<"$out" || fail "bad session list not named: $out"

# the matrix and the flatness run, tiny
BENCH_OUT="$tmp/res" BENCH_SOAK_SECONDS=0.5 BENCH_SOAK_REPEAT=1 BENCH_SOAK_SESSIONS=1,2 \
    BENCH_SOAK_MINUTES=0.1 BENCH_SOAK_FLAT_SESSIONS=2 BENCH_SOAK_WARMUP=1 \
    BENCH_SOAK_LONG_SECONDS=1 BENCH_SOAK_LONG_SESSIONS=2 \
    "$here/run" "$BUILD_DIR" >"$tmp/md" 2>"$tmp/err" || fail "run failed: $(tail -5 "$tmp/err")"
$py - "$tmp/res/soak.json" <<'PY' || fail "soak.json lacks a measurement: $(head -c 3000 "$tmp/res/soak.json")"
import json, sys
r = json.load(open(sys.argv[1]))
m = r["meta"]
assert m["nproc"] >= 1 and len(m["git_commit"]) == 40 and m["loadavg_end"], m
pts = r["matrix"]["points"]
assert [p["sessions"] for p in pts] == [1, 2], pts
for x in r["matrix"]["runs"]:
    assert x["exit"] == 0 and not x.get("error"), x
    assert x["checks"] > 0 and x["checks_per_s"] > 0 and x["peak_rss_mb"] > 1, x
    assert x["server_peak_rss_mb"] > 1, x
    assert x["exit_after_load_s"] is not None, x
    assert 0 < x["cpu_load_s"] <= x["cpu_total_s"] and x["cpu_us_per_check_total"] > 0, x
    # the draining thread alone: part of the run's CPU (10 ms ticks: 0 is possible here)
    assert x["drain_cpu_load_s"] is not None and 0 <= x["drain_cpu_load_s"] <= x["cpu_load_s"], x
    assert x["drain_us_per_check"] is not None, x
    # the same reading split by process: the run (drain + other threads) and its server
    assert abs(x["run_cpu_load_s"] + x["server_cpu_load_s"] - x["cpu_load_s"]) <= 0.02, x
    assert x["workers_us_per_check"] is not None and x["server_us_per_check"] > 0, x
    if x["checker"] == "on":
        assert x["verdict_s"] is not None and x["verdict_s"] >= 0, x
for p in pts:
    assert p["overhead_pct"] is not None and len(p["overhead_pct_rounds"]) == 1, p
    assert p["overhead_cpu_load_pct"] is not None and p["overhead_cpu_total_pct"] is not None, p
    # the judged figure round by round: one round here, the same pair as the median's
    assert p["overhead_cpu_total_pct_rounds"] == [p["overhead_cpu_total_pct"]], p
f = r["flatness"]
assert f["exit"] == 0 and f["slope_mb_per_min"] is not None and f["fit_samples"] >= 3, f
# both are rounded from the same unrounded slope (3 and 1 decimals)
assert abs(f["extrapolated_mb_per_hour"] - f["slope_mb_per_min"] * 60) <= 0.1, f
# the pinned matrix (load on CPU 0, the drain on CPU 1) wherever there are two cores
mp = r.get("matrix_pinned")
assert (mp is not None) == (m["nproc"] >= 2 and m["settings"]["pinned"]), m
if mp is not None:
    assert [p["sessions"] for p in mp["points"]] == [1, 2], mp["points"]
    for x in mp["runs"]:
        assert x["pinned"] and x["pin_ok"] is True, x
        assert x["exit"] == 0 and not x.get("error") and x["checks"] > 0, x
    for p in mp["points"]:
        assert p["overhead_pct"] is not None, p
# the long plain-history run: its history's size, verdict and exit after the load
lg = r["long"]
assert lg["exit"] == 0 and not lg.get("error") and lg["sessions"] == 2, lg
assert lg["history_bytes"] > 0 and lg["verdict_s"] is not None and lg["exit_after_load_s"] is not None, lg
names = [t["target"] for t in r["targets"]]
assert len(names) == 7 + (len(mp["points"]) if mp else 0), names
assert [t for t in r["targets"] if "long plain-history" in t["target"]][0]["status"] in ("met", "missed"), names
assert all(t["status"] in ("met", "missed", "not measured") for t in r["targets"]), r["targets"]
assert sum("core of its own" in n for n in names) == (2 if mp else 0), names
assert [t for t in r["targets"] if t["target"].startswith("end of load")][0]["status"] != "not measured"
assert [t for t in r["targets"] if "from the outside" in t["target"]][0]["status"] != "not measured"
assert all(x["after_configured_end_s"] is not None for x in r["matrix"]["runs"]), r["matrix"]["runs"]
PY
grep -q '^## Targets' "$tmp/md" || fail "no Markdown printed"
grep -q '^| sessions | drain thread µs per check' "$tmp/md" || fail "no drain thread table"
cmp -s "$tmp/md" "$tmp/res/soak.md" || fail "printed Markdown differs from soak.md"
cp "$tmp/res/soak.md" "$tmp/before.md"
"$here/run" --render "$tmp/res/soak.json" >/dev/null
cmp -s "$tmp/before.md" "$tmp/res/soak.md" || fail "--render does not reproduce soak.md"

# the soak runner, 6 s, on a frozen copy of the binary (PGFAULT)
cp "$BUILD_DIR/harness/cli/pgfault" "$tmp/pgfault-copy"
PGFAULT="$tmp/pgfault-copy" SOAK_SAMPLE_S=1 "$here/hour.sh" "$BUILD_DIR" "$tmp/hour" 0.1 >"$tmp/hour.out" 2>&1 \
    || fail "hour.sh failed: $(tail -5 "$tmp/hour.out")"
$py - "$tmp/hour/summary.json" <<'PY' || fail "summary.json: $(cat "$tmp/hour/summary.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["exit"] in (0, 1) and r["killed"] is None, r
assert r["records"] > 0 and 0 < r["operations"] < r["records"] and r["health_checks"] > 0, r
assert r["history_bytes"] > 0 and r["peak_rss_mb"] > 1 and r["rss_samples"] >= 3, r
assert r["verdict_s"] is not None and "--scenario soak" in r["meta"]["command"], r
assert r["meta"]["command"].split()[0].endswith("/pgfault-copy"), r["meta"]["command"]
PY
[ "$(wc -l <"$tmp/hour/rss.tsv")" -ge 4 ] || fail "rss.tsv has too few samples"
grep -q '^| history records |' "$tmp/hour/summary.md" || fail "no summary.md"
echo "bench soak smoke: ok"
