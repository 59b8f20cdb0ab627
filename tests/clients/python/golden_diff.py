"""golden_diff.py - run every recorded connect-time statement
(tests/data/introspection/*.json) against one server and print what came
back: parameter types, row description fields, rows in text and binary,
command tag, or the error. tests/e2e/differential.sh runs it against a real
PostgreSQL 15 and against the fake and requires identical output.

    python golden_diff.py DIR HOST PORT USER PASSWORD DBNAME

Extended protocol with the recorded parameters (oid[] statements: a sample
of single types plus sets the fake must merge), and the simple protocol for
statements without parameters. The password is never printed.
"""
import glob
import json
import os
import sys

from psycopg import pq


def show(res, order_col=None):
    if res.status == pq.ExecStatus.FATAL_ERROR:
        return ["error %s %s" % (res.error_field(pq.DiagnosticField.SQLSTATE).decode(),
                                 res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY).decode())]
    out = ["cols " + " ".join("%s:%d:%d:%d:%d:%d:%d" % (res.fname(j).decode(), res.ftype(j),
                                                        res.fmod(j), res.fsize(j), res.ftable(j),
                                                        res.ftablecol(j), res.fformat(j))
                              for j in range(res.nfields))]
    rows = []
    for i in range(res.ntuples):
        vals = []
        for j in range(res.nfields):
            v = res.get_value(i, j)
            vals.append("NULL" if v is None else (v.hex() if res.fformat(j) else v.decode()))
        rows.append(vals)
    if order_col is not None:
        # ORDER BY col DESC leaves ties in no defined order (in PostgreSQL
        # as in the fake): compare the rows of one depth as a set.
        c = [res.fname(j).decode() for j in range(res.nfields)].index(order_col)
        key = (lambda v: -int(v, 16)) if res.fformat(c) else (lambda v: -int(v))
        rows.sort(key=lambda r: (key(r[c]), r))
    out += ["row " + "|".join(r) for r in rows]
    out.append("tag " + res.command_status.decode())
    return out


def main():
    d, host, port, user, password, db = sys.argv[1:7]
    conn = pq.PGconn.connect(("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable"
                              % (host, port, user, password, db)).encode())
    if conn.status != pq.ConnStatus.OK:
        raise SystemExit("cannot connect: " + conn.error_message.decode())
    n = 0
    for path in sorted(glob.glob(os.path.join(d, "*.json"))):
        f = json.load(open(path))
        if "version()" in f["sql"]:
            continue  # version() differs by design (tests/e2e/differential.sh)
        sql = f["sql"].encode()
        name = os.path.basename(path)
        params_sets = [a["params"] for a in f["answers"]]
        if "per_element" in f:
            k = f["per_element"] - 1
            sample = params_sets[:6]
            merged = list(sample[0])
            merged[k] = "{1007,3904,16,25,1009}"
            params_sets = sample + [merged]
        r = conn.prepare(b"", sql)
        print("==", name, "prepare", pq.ExecStatus(r.status).name)
        desc = conn.describe_prepared(b"")
        print("params", [desc.param_type(i) for i in range(desc.nparams)])
        for params in params_sets:
            vals = [None if v is None else v.encode() for v in params]
            for fmt in (0, 1):
                res = conn.exec_prepared(b"", vals, result_format=fmt)
                print("exec", params, "format", fmt)
                print("\n".join(show(res, f.get("merge_order_desc"))))
                n += 1
        if not f["param_types"]:
            print("simple")
            print("\n".join(show(conn.exec_(sql))))
            n += 1
    conn.finish()
    print("done", n, "executions")


if __name__ == "__main__":
    main()
