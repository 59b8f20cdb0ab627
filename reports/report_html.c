/* report_html.c - report.html: one self-contained page a person opens after
 * a failed CI run. Verdict first, then the state-machine diagram, the session
 * timeline, latency histograms, fault-site coverage and the violation
 * witnesses. All figures are SVG generated here, so the page reads the same
 * with JavaScript off; the small inline script only checks the embedded
 * report data and marks the page rendered (the rendering test relies on it).
 * No network, no external assets.
 *
 * Key elements have stable ids: #verdict, #state-machine, #timeline,
 * #latency, #coverage, #violations, #report-data.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "pgfault/clock.h"
#include "report_internal.h"

#define H(b, lit) PGF__PUT_LIT(b, lit)

static void T(pgf_buf *b, const char *s)
{
    pgf__xml_escape(b, s ? s : "", false);
}

/* A state name that may break after its underscores on a narrow screen
 * (CONNECTING_<wbr>AUTH), never in the middle of a word. */
static void T_wbr(pgf_buf *b, const char *s)
{
    pgf_buf tmp = PGF_BUF_INIT;
    T(&tmp, s); /* escaping never makes an '_' of anything but '_' */
    if (tmp.failed)
        b->failed = true;
    for (size_t i = 0; i < tmp.len; i++) {
        pgf_buf_put_u8(b, tmp.data[i]);
        if (tmp.data[i] == '_')
            H(b, "<wbr>");
    }
    pgf_buf_free(&tmp);
}

/* "1.2ms" style duration: three significant digits, never an exponent. */
static void dur(pgf_buf *b, uint64_t ns)
{
    static const char *const units[] = {"ns", "us", "ms", "s"};
    double v = (double)ns;
    int u = 0;
    while (u < 3 && v >= 999.5) {
        v /= 1000.0;
        u++;
    }
    if (u == 0 || v >= 99.95)
        pgf_buf_printf(b, "%.0f%s", v, units[u]);
    else if (v >= 9.995)
        pgf_buf_printf(b, "%.1f%s", v, units[u]);
    else
        pgf_buf_printf(b, "%.2f%s", v, units[u]);
}

/* One witness line: one event per line, so control characters inside it
 * (tabs, newlines off the wire) are shown as \xNN, then XML-escaped. */
static void witness_line(pgf_buf *b, const char *line)
{
    pgf_buf tmp = PGF_BUF_INIT;
    pgf__console_escape(&tmp, line, false);
    pgf_buf_put_u8(&tmp, 0);
    if (tmp.failed)
        b->failed = true;
    else
        T(b, (const char *)tmp.data);
    pgf_buf_free(&tmp);
}

/* Approximate rendered width of `s` at 12px sans-serif. */
static double text_width(const char *s)
{
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        chars += (*p & 0xC0) != 0x80;
    return 7.2 * (double)chars;
}

static const char *const palette[] = {"#4e79a7", "#59a14f", "#edc948", "#b07aa1",
                                      "#76b7b2", "#ff9da7", "#9c755f", "#bab0ac",
                                      "#f28e2b", "#86bcb6", "#d4a6c8", "#8cd17d"};
#define PALETTE_N (sizeof palette / sizeof palette[0])

static const char *state_color(const pgf_report_scenario *s, const char *state)
{
    for (size_t i = 0; i < s->states.len; i++)
        if (strcmp(s->states.items[i], state) == 0)
            return palette[i % PALETTE_N];
    return "#999999";
}

static const char CSS[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;"
    "color:#1d2430;background:#f5f6f8}"
    "main{max-width:1240px;margin:0 auto;padding:0 20px 40px}"
    "h1,h2,h3{line-height:1.2}h2{margin:34px 0 8px;border-bottom:2px solid #d8dce3;"
    "padding-bottom:4px}h3{margin:22px 0 6px;font-size:16px}"
    "#verdict{padding:22px 28px;color:#fff;margin:0 -20px 16px}"
    "#verdict.pass{background:#1f7a3f}#verdict.fail{background:#b3261e}"
    "#verdict .big{font-size:56px;font-weight:800;letter-spacing:2px;margin:0}"
    "#verdict .line{font-size:20px;margin:4px 0 10px}"
    "#verdict .intr{display:inline-block;background:#f2b705;color:#222;font-weight:700;"
    "padding:2px 10px;border-radius:4px;margin-left:12px;font-size:18px;vertical-align:middle}"
    "#verdict dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}"
    "#verdict dt{opacity:.85}#verdict dd{margin:0;font-family:ui-monospace,monospace}"
    "#verdict a{color:#fff}"
    ".card{background:#fff;border:1px solid #d8dce3;border-radius:6px;padding:12px 16px;"
    "margin:10px 0;overflow-x:auto;overflow-wrap:anywhere}"
    "table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #d8dce3;"
    "padding:3px "
    "8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}th{background:#eef0f4;white-"
    "space:nowrap}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    ".desc{display:block;max-width:520px}.tag{white-space:nowrap}"
    "tr.bad td{background:#fde8e6}.tag{font-weight:700;padding:1px 6px;border-radius:3px;"
    "color:#fff}.tag.pass{background:#1f7a3f}.tag.fail{background:#b3261e}"
    "pre{background:#10141b;color:#e6e9ef;padding:10px 12px;border-radius:5px;overflow-x:auto;"
    "white-space:pre-wrap;word-break:break-all;font-size:12.5px}"
    "#verdict pre{background:rgba(0,0,0,.25);margin:4px 0}"
    "nav{margin:8px 0 0}nav a{margin-right:14px}"
    ".note{color:#5a6270;font-size:13px}.legend span{display:inline-block;margin-right:12px}"
    ".sw{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;"
    "vertical-align:-1px}"
    "svg text{font-family:system-ui,sans-serif;font-size:12px}"
    "td.heat{text-align:center;min-width:46px}"
    "figure.lat{display:inline-block;vertical-align:top;margin:10px 24px 4px 0;max-width:100%}"
    "figure.lat svg,figure.chart svg,svg.sm{max-width:100%;height:auto}"
    "figure.chart{display:inline-block;vertical-align:top;margin:8px 18px 8px 0;max-width:100%}"
    ".tlwrap{overflow-x:auto;max-width:100%}.legend{font-size:12.5px;line-height:1.9}"
    "svg.seq{width:100%;height:auto;min-width:540px}.legend .st{margin-right:6px}table.edges "
    "td{overflow-wrap:normal}"
    ".narrow{display:none}@media (max-width:700px){.narrow{display:inline}.desc{min-width:170px}}"
    "p.plain{font-size:16px;font-weight:600;margin:6px 0 4px}"
    "#verdict p.what{font-size:17px;background:rgba(0,0,0,.18);padding:8px 12px;"
    "border-radius:5px;max-width:980px}"
    ".violation{border-left:5px solid #b3261e}";

/* ---- verdict -------------------------------------------------------------------------------- */

static void check_sentence(pgf_buf *b, const pgf_report_check *c, const char *open,
                           const char *close);

/* A scenario's leading failure: its first failed check that has a witness,
 * else its first failed one (NULL if none); *at its index. A check with no
 * witness (a kind seen only after its sessions' first violations) is not
 * one a reader can act on first. */
static const pgf_report_check *lead_failure(const pgf_report_scenario *s, size_t *at)
{
    const pgf_report_check *lead = NULL;
    for (size_t j = 0; j < s->checks.len; j++) {
        const pgf_report_check *c = s->checks.items[j];
        if (!c->passed && (lead == NULL || (lead->witness.len == 0 && c->witness.len > 0))) {
            lead = c;
            *at = j;
        }
    }
    return lead;
}

/* Under the verdict, what went wrong in plain words: the first scenario's
 * leading failure with a witness (else the first leading failure), linked
 * to its card. */
static void what_went_wrong(pgf_buf *b, const pgf_report *r)
{
    const pgf_report_check *pick = NULL;
    size_t si = 0, ci = 0;
    for (size_t i = 0; i < r->scenarios.len; i++) {
        size_t j = 0;
        const pgf_report_check *c = lead_failure(r->scenarios.items[i], &j);
        if (c != NULL && (pick == NULL || (pick->witness.len == 0 && c->witness.len > 0))) {
            pick = c;
            si = i;
            ci = j;
        }
    }
    if (pick == NULL)
        return;
    pgf_buf tmp = PGF_BUF_INIT;
    check_sentence(&tmp, pick, "", "");
    if (tmp.failed) {
        b->failed = true;
    } else if (tmp.len > 0) {
        H(b, "<p class=\"what\">What went wrong");
        if (r->scenarios.len > 1) {
            H(b, " in ");
            T(b, r->scenarios.items[si]->name);
        }
        if (pick->session)
            pgf_buf_printf(b, " (session %llu)", (unsigned long long)pick->session);
        H(b, ": ");
        pgf_buf_put(b, tmp.data, tmp.len);
        pgf_buf_printf(b, " <a href=\"#viol-%zu-%zu\">See it step by step.</a></p>\n", si, ci);
    }
    pgf_buf_free(&tmp);
}

static void verdict(pgf_buf *b, const pgf_report *r, const pgf__totals *t)
{
    bool pass = t->checks_failed == 0;
    pgf_buf_printf(b, "<header id=\"verdict\" class=\"%s\" data-verdict=\"%s\">\n",
                   pass ? "pass" : "fail", pass ? "pass" : "fail");
    pgf_buf_printf(b, "<p class=\"big\">%s", pass ? "PASS" : "FAIL");
    if (r->interrupted)
        H(b, "<span class=\"intr\">INTERRUPTED &#8211; partial results</span>");
    H(b, "</p>\n<p class=\"line\">");
    if (pass)
        pgf_buf_printf(b, "all %zu verdict checks passed in %zu scenario%s", t->checks,
                       t->scenarios, t->scenarios == 1 ? "" : "s");
    else
        pgf_buf_printf(b, "%zu of %zu verdict checks failed in %zu of %zu scenario%s",
                       t->checks_failed, t->checks, t->scenarios_failed, t->scenarios,
                       t->scenarios == 1 ? "" : "s");
    pgf_buf_printf(b, " &#183; %llu health checks &#183; %llu violations</p>\n",
                   (unsigned long long)t->health_checks, (unsigned long long)t->violations);
    if (!pass)
        what_went_wrong(b, r);
    H(b, "<dl>");
    if (r->name) {
        H(b, "<dt>run</dt><dd>");
        T(b, r->name);
        H(b, "</dd>");
    }
    if (r->description) {
        H(b, "<dt>description</dt><dd>");
        T(b, r->description);
        H(b, "</dd>");
    }
    pgf_buf_printf(b, "<dt>seed</dt><dd>%llu</dd><dt>mode</dt><dd>", (unsigned long long)r->seed);
    T(b, r->mode ? r->mode : "?");
    H(b, "</dd><dt>duration</dt><dd>");
    dur(b, r->duration_ns);
    H(b, " wall-clock");
    if (r->scenarios.len == 1 && r->scenarios.items[0]->has_run &&
        pgf__scenario_virtual(r->scenarios.items[0])) {
        H(b, " &#183; ");
        dur(b, r->scenarios.items[0]->duration_ns);
        H(b, " of virtual time (--mode sim)");
    }
    H(b, "</dd>");
    if (r->start_wall_us) {
        char ts[40];
        pgf_wall_iso8601(r->start_wall_us, ts, sizeof ts);
        pgf_buf_printf(b, "<dt>started</dt><dd>%s</dd>", ts);
    }
    H(b, "<dt>pgfault</dt><dd>");
    T(b, r->tool_version ? r->tool_version : "?");
    H(b, "</dd></dl>\n");
    const char *replay = r->replay_command;
    for (size_t i = 0; replay == NULL && i < r->scenarios.len; i++)
        if (!pgf__scenario_passed(r->scenarios.items[i]))
            replay = pgf__scenario_replay(r->scenarios.items[i]);
    if (!pass && replay) {
        H(b, "<div id=\"replay\">Reproduce this run:<pre>");
        T(b, replay);
        H(b, "</pre></div>\n");
    }
    H(b, "<nav><a href=\"#state-machine\">state machine</a><a href=\"#timeline\">timeline</a>"
         "<a href=\"#latency\">latency</a><a href=\"#coverage\">fault coverage</a>"
         "<a href=\"#violations\">violations</a></nav>\n</header>\n");
}

static void scenario_table(pgf_buf *b, const pgf_report *r)
{
    H(b, "<section id=\"scenarios\"><h2>Scenarios</h2><div class=\"card\"><table>"
         "<tr><th>verdict</th><th>scenario</th><th>verdict checks failed</th><th>health checks</th>"
         "<th>violations</th><th>healthy p99</th><th>first failure</th></tr>\n");
    for (size_t i = 0; i < r->scenarios.len; i++) {
        const pgf_report_scenario *s = r->scenarios.items[i];
        bool ok = pgf__scenario_passed(s);
        size_t failed = 0, at = 0;
        for (size_t j = 0; j < s->checks.len; j++)
            failed += !s->checks.items[j]->passed;
        const pgf_report_check *first = lead_failure(s, &at);
        pgf_report_latency l;
        pgf_report_latency_get(s, PGF_REPORT_HEALTHY, &l);
        pgf_buf_printf(b,
                       "<tr%s><td><span class=\"tag %s\">%s</span></td><td><a "
                       "href=\"#sm-%zu\">",
                       ok ? "" : " class=\"bad\"", ok ? "pass" : "fail", ok ? "PASS" : "FAIL", i);
        T(b, s->name);
        H(b, "</a>");
        if (s->description) {
            H(b, "<br><span class=\"note desc\">");
            T(b, s->description);
            H(b, "</span>");
        }
        pgf_buf_printf(b, "</td><td class=\"n\">%zu / %zu</td><td class=\"n\">%llu</td>", failed,
                       s->checks.len, (unsigned long long)pgf__scenario_health_checks(s));
        pgf_buf_printf(b, "<td class=\"n\">%llu</td><td class=\"n\">",
                       (unsigned long long)pgf__scenario_violations(s));
        if (l.count)
            dur(b, l.p99);
        else
            H(b, "&#8211;");
        H(b, "</td><td>");
        if (first) {
            pgf_buf_printf(b, "<a href=\"#viol-%zu\">", i);
            T(b, first->name);
            H(b, "</a>: ");
            T(b, first->message ? first->message : "");
        }
        H(b, "</td></tr>\n");
    }
    H(b, "</table></div></section>\n");
}

/* ---- state machine -------------------------------------------------------------------------- */

typedef struct node {
    double x, y, rx, ry;
} node;

static int state_index(const pgf_report_scenario *s, const char *state)
{
    for (size_t i = 0; i < s->states.len; i++)
        if (strcmp(s->states.items[i], state) == 0)
            return (int)i;
    return -1;
}

/* Point where the ray from the ellipse's centre towards (tx, ty) leaves it. */
static void ellipse_exit(const node *n, double tx, double ty, double *ox, double *oy)
{
    double dx = tx - n->x, dy = ty - n->y, len = sqrt(dx * dx + dy * dy);
    if (len < 1e-9) {
        *ox = n->x, *oy = n->y;
        return;
    }
    dx /= len, dy /= len;
    double t = 1.0 / sqrt((dx / n->rx) * (dx / n->rx) + (dy / n->ry) * (dy / n->ry));
    *ox = n->x + dx * t, *oy = n->y + dy * t;
}

static void edge_label(pgf_buf *b, const pgf__edge *e, double x, double y)
{
    /* A light plate under the label keeps it readable where edges cross. */
    char num[32];
    int digits = snprintf(num, sizeof num, "%llu", (unsigned long long)e->count);
    double w = (e->op ? text_width(e->op) + 7.2 : 0) + 7.2 * (digits + 1) + (e->legal ? 0 : 60);
    if (!e->legal)
        w *= 1.1;
    pgf_buf_printf(b,
                   "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"16\" rx=\"3\" "
                   "fill=\"#fff\" fill-opacity=\"0.85\"/>",
                   x - w / 2 - 2, y - 8, w + 4);
    pgf_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"el%s\">", x,
                   y + 4, e->legal ? "" : " illegal");
    if (!e->legal)
        H(b, "ILLEGAL ");
    if (e->op) {
        T(b, e->op);
        H(b, " ");
    }
    pgf_buf_printf(b, "&#215;%llu</text>\n", (unsigned long long)e->count);
}

static void edge_title(pgf_buf *b, const pgf__edge *e)
{
    H(b, "<title>");
    T(b, e->from);
    H(b, " &#8594; ");
    T(b, e->to);
    if (e->op) {
        H(b, " by ");
        T(b, e->op);
    }
    pgf_buf_printf(b, ": %llu times%s</title>", (unsigned long long)e->count,
                   e->legal ? "" : " (ILLEGAL)");
}

static void state_machine(pgf_buf *b, const pgf_report_scenario *s, size_t idx)
{
    size_t n = s->states.len;
    if (n == 0) {
        H(b, "<p class=\"note\">no states recorded</p>\n");
        return;
    }
    node *nodes = calloc(n, sizeof *nodes);
    if (nodes == NULL) {
        b->failed = true;
        return;
    }
    double maxw = 0;
    for (size_t i = 0; i < n; i++) {
        double w = text_width(s->states.items[i]);
        if (w > maxw)
            maxw = w;
    }
    /* States on a circle large enough that neighbours do not touch. */
    double R = fmax(200.0, (double)n * (maxw + 40.0) / (2 * M_PI) * 1.15);
    double margin = maxw / 2 + 110, W = 2 * (R + margin), Hh = 2 * (R + 80);
    double cx = W / 2, cy = Hh / 2;
    for (size_t i = 0; i < n; i++) {
        double a = -M_PI / 2 + 2 * M_PI * (double)i / (double)n;
        nodes[i].x = cx + R * cos(a);
        nodes[i].y = cy + R * sin(a);
        nodes[i].rx = text_width(s->states.items[i]) / 2 + 14;
        nodes[i].ry = 17;
    }
    pgf_buf_printf(b,
                   "<svg class=\"sm\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
                   "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
                   "aria-label=\"state machine\">\n",
                   W, Hh, W, Hh);
    pgf_buf_printf(b,
                   "<defs><marker id=\"ah%zu\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" "
                   "markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">"
                   "<path d=\"M0,0L10,5L0,10z\" fill=\"#55606e\"/></marker>"
                   "<marker id=\"ahr%zu\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" "
                   "markerWidth=\"6\" markerHeight=\"6\" orient=\"auto-start-reverse\">"
                   "<path d=\"M0,0L10,5L0,10z\" fill=\"#d0241b\"/></marker></defs>\n"
                   "<style>.el{fill:#333;paint-order:stroke;stroke:#fff;stroke-width:4px;"
                   "stroke-linejoin:round}.el.illegal{fill:#d0241b;font-weight:700}</style>\n",
                   idx, idx);
    uint64_t maxc = 1;
    for (size_t i = 0; i < s->edges.len; i++)
        if (s->edges.items[i].count > maxc)
            maxc = s->edges.items[i].count;
    /* Edges first (under the nodes), labels last (over everything). */
    pgf_buf labels = PGF_BUF_INIT;
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: legal edges; pass 1: illegal ones, drawn on top */
        for (size_t i = 0; i < s->edges.len; i++) {
            const pgf__edge *e = &s->edges.items[i];
            if (e->legal == (pass == 1))
                continue;
            int fi = state_index(s, e->from), ti = state_index(s, e->to);
            if (fi < 0 || ti < 0)
                continue;
            /* How many earlier edges share (from, to): fan them out. */
            int k = 0;
            for (size_t j = 0; j < i; j++)
                k += strcmp(s->edges.items[j].from, e->from) == 0 &&
                     strcmp(s->edges.items[j].to, e->to) == 0;
            double width =
                e->count == 0 ? 1.2 : 1.2 + 3.0 * log1p((double)e->count) / log1p((double)maxc);
            char style[200];
            snprintf(
                style, sizeof style,
                "fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\"%s marker-end=\"url(#%s%zu)\"",
                e->legal ? (e->count ? "#55606e" : "#a9b0ba") : "#d0241b", e->legal ? width : 3.2,
                e->count == 0 && e->legal ? " stroke-dasharray=\"5 4\"" : "",
                e->legal ? "ah" : "ahr", idx);
            const node *a = &nodes[fi], *z = &nodes[ti];
            double lx, ly;
            if (fi == ti) {
                /* Self-loop outside the circle. */
                double ang = atan2(a->y - cy, a->x - cx), spread = 0.5;
                double out = 58 + 22 * k;
                double sx = a->x + a->rx * cos(ang - spread), sy = a->y + a->ry * sin(ang - spread);
                double ex = a->x + a->rx * cos(ang + spread), ey = a->y + a->ry * sin(ang + spread);
                double c1x = a->x + (a->rx + out) * cos(ang - spread * 1.6),
                       c1y = a->y + (a->ry + out) * sin(ang - spread * 1.6);
                double c2x = a->x + (a->rx + out) * cos(ang + spread * 1.6),
                       c2y = a->y + (a->ry + out) * sin(ang + spread * 1.6);
                pgf_buf_printf(b, "<path d=\"M%.1f,%.1fC%.1f,%.1f %.1f,%.1f %.1f,%.1f\" %s>", sx,
                               sy, c1x, c1y, c2x, c2y, ex, ey, style);
                lx = a->x + (a->rx + out * 0.8) * cos(ang);
                ly = a->y + (a->ry + out * 0.8) * sin(ang);
            } else {
                double mx = (a->x + z->x) / 2, my = (a->y + z->y) / 2;
                double dx = z->x - a->x, dy = z->y - a->y, len = sqrt(dx * dx + dy * dy);
                double nx = -dy / len, ny = dx / len, off = 26 + 24 * k;
                double qx = mx + nx * off, qy = my + ny * off;
                double sx, sy, ex, ey;
                ellipse_exit(a, qx, qy, &sx, &sy);
                ellipse_exit(z, qx, qy, &ex, &ey);
                pgf_buf_printf(b, "<path d=\"M%.1f,%.1fQ%.1f,%.1f %.1f,%.1f\" %s>", sx, sy, qx, qy,
                               ex, ey, style);
                lx = 0.25 * sx + 0.5 * qx + 0.25 * ex;
                ly = 0.25 * sy + 0.5 * qy + 0.25 * ey;
            }
            edge_title(b, e);
            H(b, "</path>\n");
            edge_label(&labels, e, lx, ly);
        }
    }
    for (size_t i = 0; i < n; i++) {
        const node *nd = &nodes[i];
        pgf_buf_printf(b,
                       "<g><ellipse cx=\"%.1f\" cy=\"%.1f\" rx=\"%.1f\" ry=\"%.1f\" fill=\"%s\" "
                       "fill-opacity=\"0.25\" stroke=\"%s\" stroke-width=\"2\"/>"
                       "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                       "font-weight=\"600\">",
                       nd->x, nd->y, nd->rx, nd->ry, palette[i % PALETTE_N], palette[i % PALETTE_N],
                       nd->x, nd->y + 4);
        T(b, s->states.items[i]);
        H(b, "</text></g>\n");
    }
    if (labels.failed)
        b->failed = true;
    else if (labels.len)
        pgf_buf_put(b, labels.data, labels.len);
    pgf_buf_free(&labels);
    H(b, "</svg>\n");
    free(nodes);

    /* The exact numbers, illegal edges first. */
    pgf_buf_printf(b,
                   "<details%s><summary>%zu edges (table)</summary><table class=\"edges\">"
                   "<tr><th>from</th><th>to</th><th>op</th><th>count</th><th>legal</th></tr>\n",
                   s->edges.len <= 12 ? " open" : "", s->edges.len);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < s->edges.len; i++) {
            const pgf__edge *e = &s->edges.items[i];
            if (e->legal != (pass == 1))
                continue;
            pgf_buf_printf(b, "<tr%s><td>", e->legal ? "" : " class=\"bad\"");
            T_wbr(b, e->from);
            H(b, "</td><td>");
            T_wbr(b, e->to);
            H(b, "</td><td>");
            T(b, e->op ? e->op : "");
            pgf_buf_printf(b, "</td><td class=\"n\">%llu</td><td>%s</td></tr>\n",
                           (unsigned long long)e->count, e->legal ? "yes" : "<b>NO</b>");
        }
    }
    H(b, "</table></details>\n");
}

/* ---- timeline ------------------------------------------------------------------------------- */

static int cmp_u64(const void *pa, const void *pb)
{
    uint64_t x = *(const uint64_t *)pa, y = *(const uint64_t *)pb;
    return x < y ? -1 : x > y;
}

static bool has_u64(const uint64_t *v, size_t n, uint64_t x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

/* Sorted, deduplicated copy of v[n] in place; returns the new length. */
static size_t uniq_u64(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_u64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || v[k - 1] != v[i])
            v[k++] = v[i];
    return k;
}

/* Sessions with a violation: the checker's marks and the failed checks. */
static size_t failing_sessions(const pgf_report_scenario *s, uint64_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < s->vmarks.len; i++)
        out[n++] = s->vmarks.items[i].session;
    for (size_t i = 0; i < s->checks.len; i++)
        if (!s->checks.items[i]->passed && s->checks.items[i]->session != 0)
            out[n++] = s->checks.items[i]->session;
    return uniq_u64(out, n);
}

static const char *op_fill(const pgf__op *o)
{
    if (o->result == NULL)
        return "#d0241b"; /* never completed */
    if (strcmp(o->result, "ok") == 0)
        return "#8a9bb0";
    if (strcmp(o->result, "fail") == 0)
        return "#f28e2b";
    return "#b07aa1"; /* info: indeterminate */
}

static void tl_time_range(const pgf_report_scenario *s, const uint64_t *shown, size_t nshown,
                          uint64_t *t0, uint64_t *t1)
{
    uint64_t hi = 0;
#define BUMP(t)       \
    do {              \
        if ((t) > hi) \
            hi = (t); \
    } while (0)
    for (size_t i = 0; i < s->spans.len; i++)
        if (has_u64(shown, nshown, s->spans.items[i].session))
            BUMP(s->spans.items[i].end_ns);
    for (size_t i = 0; i < s->ops.len; i++)
        if (has_u64(shown, nshown, s->ops.items[i].session))
            BUMP(s->ops.items[i].end_ns);
    for (size_t i = 0; i < s->vmarks.len; i++)
        BUMP(s->vmarks.items[i].t_ns);
    for (size_t i = 0; i < s->marks.len; i++)
        BUMP(s->marks.items[i].t_ns);
    for (size_t i = 0; i < s->windows.len; i++)
        BUMP(s->windows.items[i].end_ns);
    if (s->has_run)
        BUMP(s->duration_ns);
#undef BUMP
    *t0 = 0; /* times are since the run started */
    *t1 = hi > 0 ? hi : 1;
}

/* Fault windows as shaded bands from y0 to y1 (with the rule's name). */
static void shade_windows(pgf_buf *b, const pgf_report_scenario *s, double x0, double w,
                          uint64_t t1, double y0, double y1, bool label)
{
    for (size_t i = 0; i < s->windows.len; i++) {
        const pgf__window *fw = &s->windows.items[i];
        double a = x0 + w * ((double)fw->start_ns / (double)t1),
               z = x0 + w * ((double)fw->end_ns / (double)t1);
        pgf_buf_printf(
            b,
            "<rect class=\"fwin\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
            "fill=\"#d0241b\" fill-opacity=\"0.08\" stroke=\"#d0241b\" "
            "stroke-opacity=\"0.35\" stroke-dasharray=\"3 3\"><title>fault window: rule ",
            a, y0, fmax(z - a, 1.5), y1 - y0);
        T(b, fw->rule);
        H(b, " armed ");
        dur(b, fw->start_ns);
        H(b, " &#8211; ");
        dur(b, fw->end_ns);
        H(b, "</title></rect>\n");
        if (label) {
            pgf_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#b3261e\">",
                           a + 3, y0 + 11 - (i % 2) * 11.0);
            T(b, fw->rule);
            H(b, "</text>\n");
        }
    }
}

/* Items of one session found fast: (session, index) pairs sorted. */
typedef struct sess_ix {
    uint64_t session;
    size_t i;
} sess_ix;

static int cmp_sess_ix(const void *pa, const void *pb)
{
    const sess_ix *x = pa, *y = pb;
    if (x->session != y->session)
        return x->session < y->session ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* First position in ix[n] whose session is `session` (n when none). */
static size_t ix_first(const sess_ix *ix, size_t n, uint64_t session)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix[mid].session < session)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* What one timeline draws, shared by its parts. */
typedef struct tl_ctx {
    const pgf_report_scenario *s;
    const uint64_t *shown; /* failing sessions first, then others by id */
    size_t nshown, nfail, nfail_shown, marks_hidden;
    uint64_t total, t1;
    bool server_row, virt;
    const sess_ix *spx, *opx; /* spans and ops by session */
    double label_w, plot_w, row_h, top, W, Hh;
} tl_ctx;

static double tl_x(const tl_ctx *c, uint64_t t)
{
    return c->label_w + c->plot_w * ((double)(t) / (double)c->t1);
}

/* The honest caption and the legend. */
static void tl_caption(pgf_buf *b, const tl_ctx *c)
{
    const pgf_report_scenario *s = c->s;
    size_t nshown = c->nshown, nfail = c->nfail, nfail_shown = c->nfail_shown;
    uint64_t total = c->total;
    pgf_buf_printf(b,
                   "<p class=\"note tl-caption\" data-shown=\"%zu\" data-total=\"%llu\">"
                   "<b>showing %zu of %llu sessions</b>",
                   nshown, (unsigned long long)total, nshown, (unsigned long long)total);
    if (nfail > 0)
        pgf_buf_printf(b, ": %s%zu with a violation first (in red)%s",
                       nfail_shown == nfail ? "all " : "", nfail_shown,
                       nfail_shown == nfail ? "" : ", more not drawn");
    if (nshown > nfail_shown)
        pgf_buf_printf(b, "%s%zu %s by id", nfail > 0 ? ", then " : ": ", nshown - nfail_shown,
                       nshown - nfail_shown < total - nfail ? "of the others (a sample spread over "
                                                              "the run)"
                                                            : "others");
    H(b, ". Time runs left to right from 0 to ");
    dur(b, c->t1);
    pgf_buf_printf(b, "%s",
                   c->virt ? " of <b>virtual time</b> (--mode sim: many events share an instant)"
                           : " of wall-clock time");
    if (c->marks_hidden)
        pgf_buf_printf(b, "; %zu fault marks are on sessions not drawn", c->marks_hidden);
    H(b, ".</p>\n");
    H(b,
      "<div class=\"legend\">"
      "<span><i class=\"sw\" style=\"background:#8a9bb0\"></i>operation ok</span>"
      "<span><i class=\"sw\" style=\"background:#f28e2b\"></i>operation failed</span>"
      "<span><i class=\"sw\" style=\"background:#d0241b\"></i>never completed</span>"
      "<span><i class=\"sw\" style=\"background:#fff;border:2px solid #7b3fa0\"></i>racer's "
      "call (made while another operation was in progress)</span>"
      "<span><svg width=\"12\" height=\"12\"><path d=\"M1,1L11,1L6,11z\" fill=\"#d0241b\"/>"
      "</svg> fault fired</span>"
      "<span><svg width=\"12\" height=\"12\"><path d=\"M2,2L10,10M10,2L2,10\" stroke=\"#d0241b\" "
      "stroke-width=\"2.5\"/></svg> violation</span>"
      "<span><i class=\"sw\" style=\"background:rgba(208,36,27,.12);border:1px dashed "
      "#d0241b\"></i>fault window</span>"
      "<span>state strip: ");
    for (size_t i = 0; i < s->states.len; i++) {
        pgf_buf_printf(b, "<span class=\"st\"><i class=\"sw\" style=\"background:%s\"></i>",
                       palette[i % PALETTE_N]);
        T(b, s->states.items[i]);
        H(b, "</span>");
    }
    H(b, " (a black tick is a state change)</span></div>\n");
}

/* The state strip of one session's row, with a tick at every change. */
static void tl_row_spans(pgf_buf *b, const tl_ctx *c, uint64_t session, double y)
{
    const pgf_report_scenario *s = c->s;
    for (size_t k = ix_first(c->spx, s->spans.len, session);
         k < s->spans.len && c->spx[k].session == session; k++) {
        const pgf__span *sp = &s->spans.items[c->spx[k].i];
        double x0 = tl_x(c, sp->start_ns), x1 = tl_x(c, sp->end_ns);
        pgf_buf_printf(b,
                       "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"6\" fill=\"%s\">"
                       "<title>session %llu: ",
                       x0, y + c->row_h - 9, fmax(x1 - x0, 0), state_color(s, sp->state),
                       (unsigned long long)session);
        T(b, sp->state);
        H(b, " ");
        dur(b, sp->start_ns);
        H(b, " &#8211; ");
        dur(b, sp->end_ns);
        pgf_buf_printf(b,
                       "</title></rect><line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" "
                       "stroke=\"#1d2430\" stroke-width=\"1\"><title>",
                       x0, y + c->row_h - 12, x0, y + c->row_h - 1);
        T(b, sp->state);
        H(b, " from ");
        dur(b, sp->start_ns);
        H(b, "</title></line>\n");
    }
}

/* Operations of one session: invoke -> completion; a racer's call in its own lane. */
static void tl_row_ops(pgf_buf *b, const tl_ctx *c, uint64_t session, double y)
{
    const pgf_report_scenario *s = c->s;
    for (size_t k = ix_first(c->opx, s->ops.len, session);
         k < s->ops.len && c->opx[k].session == session; k++) {
        const pgf__op *o = &s->ops.items[c->opx[k].i];
        double x0 = tl_x(c, o->invoke_ns), x1 = tl_x(c, o->end_ns), w = fmax(x1 - x0, 3);
        double oy = o->raced ? y + 11 : y + 2, oh = 8;
        pgf_buf_printf(b,
                       "<rect class=\"op%s\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" "
                       "height=\"%.0f\" rx=\"2\" fill=\"%s\"%s><title>",
                       o->raced ? " racer" : "", x0, oy, w, oh, op_fill(o),
                       o->raced ? " stroke=\"#7b3fa0\" stroke-width=\"1.5\"" : "");
        pgf_buf_printf(b, "%s", o->raced ? "racer's call: " : "");
        T(b, o->op);
        pgf_buf_printf(b, "() #%llu: ", (unsigned long long)o->op_id);
        dur(b, o->invoke_ns);
        H(b, " &#8594; ");
        if (o->result) {
            dur(b, o->end_ns);
            H(b, " ");
            T(b, o->result);
            if (o->error) {
                H(b, " ");
                T(b, o->error);
            }
        } else {
            H(b, "never completed");
        }
        H(b, "</title></rect>\n");
        if (w > text_width(o->op) * 0.85 + 6) {
            pgf_buf_printf(b,
                           "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" fill=\"#fff\" "
                           "pointer-events=\"none\">",
                           x0 + 2, oy + 7);
            T(b, o->op);
            H(b, "</text>\n");
        }
    }
}

/* Violations of one session: a red cross and a line through the row. */
static void tl_row_vmarks(pgf_buf *b, const tl_ctx *c, uint64_t session, double y)
{
    const pgf_report_scenario *s = c->s;
    for (size_t i = 0; i < s->vmarks.len; i++) {
        const pgf__vmark *v = &s->vmarks.items[i];
        if (v->session != session)
            continue;
        double x = tl_x(c, v->t_ns), cy = y + c->row_h / 2 - 1;
        pgf_buf_printf(b,
                       "<g class=\"vmark\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                       "y2=\"%.1f\" stroke=\"#d0241b\" stroke-width=\"1\"/>"
                       "<path d=\"M%.1f,%.1fL%.1f,%.1fM%.1f,%.1fL%.1f,%.1f\" stroke=\"#d0241b\" "
                       "stroke-width=\"3\"/><title>violation at ",
                       x, y, x, y + c->row_h - 1, x - 5, cy - 5, x + 5, cy + 5, x + 5, cy - 5,
                       x - 5, cy + 5);
        dur(b, v->t_ns);
        H(b, ": ");
        T(b, v->kind);
        pgf_buf_printf(b,
                       "</title></g><text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" "
                       "fill=\"#b3261e\"%s>",
                       x > c->label_w + c->plot_w - 140 ? x - 9 : x + 9, cy + 4,
                       x > c->label_w + c->plot_w - 140 ? " text-anchor=\"end\"" : "");
        T(b, v->kind);
        H(b, "</text>\n");
    }
}

/* Row r of the shown sessions, drawn at row `row` of the chart. */
static void tl_row(pgf_buf *b, const tl_ctx *c, size_t r, size_t row)
{
    double y = c->top + c->row_h * (double)row;
    bool flagged = r < c->nfail_shown;
    uint64_t session = c->shown[r];
    if (flagged)
        pgf_buf_printf(b,
                       "<rect x=\"0\" y=\"%.1f\" width=\"%.0f\" height=\"%.1f\" "
                       "fill=\"#fde8e6\"/>\n",
                       y, c->W, c->row_h - 1);
    else if (r == c->nfail_shown && r > 0)
        pgf_buf_printf(b,
                       "<line x1=\"0\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#8a929e\" "
                       "stroke-dasharray=\"4 3\"/>\n",
                       y - 0.5, c->W, y - 0.5);
    pgf_buf_printf(b,
                   "<g class=\"tlrow%s\" data-session=\"%llu\"><text x=\"4\" y=\"%.1f\"%s>"
                   "%ssession %llu</text>\n",
                   flagged ? " failing" : "", (unsigned long long)session, y + c->row_h * 0.5 + 4,
                   flagged ? " fill=\"#b3261e\" font-weight=\"700\"" : "",
                   flagged ? "&#10007; " : "", (unsigned long long)session);
    tl_row_spans(b, c, session, y);
    tl_row_ops(b, c, session, y);
    tl_row_vmarks(b, c, session, y);
    H(b, "</g>\n");
}

/* Fault marks on top of the row they hit. */
static void tl_fault_marks(pgf_buf *b, const tl_ctx *c)
{
    const pgf_report_scenario *s = c->s;
    for (size_t i = 0; i < s->marks.len; i++) {
        const pgf__mark *m = &s->marks.items[i];
        size_t r;
        if (m->session == 0) {
            r = 0;
        } else {
            for (r = 0; r < c->nshown && c->shown[r] != m->session; r++)
                ;
            if (r == c->nshown)
                continue;
            r += c->server_row ? 1 : 0;
        }
        double x = tl_x(c, m->t_ns), y = c->top + c->row_h * (double)r;
        pgf_buf_printf(b,
                       "<path class=\"fmark\" d=\"M%.1f,%.1fL%.1f,%.1fL%.1f,%.1fz\" "
                       "fill=\"#d0241b\" stroke=\"#fff\" stroke-width=\"0.8\"><title>fault at ",
                       x - 5, y, x + 5, y, x, y + 8);
        dur(b, m->t_ns);
        H(b, ": ");
        T(b, m->phase);
        H(b, " / ");
        T(b, m->action);
        if (m->rule) {
            H(b, " (rule ");
            T(b, m->rule);
            H(b, ")");
        }
        H(b, "</title></path>\n");
    }
}

/* The chart: time axis, server row, one row per shown session, fault marks. */
static void tl_chart(pgf_buf *b, tl_ctx *c)
{
    const pgf_report_scenario *s = c->s;
    c->label_w = 112, c->plot_w = 1000, c->row_h = 28, c->top = 46;
    size_t rows = c->nshown + (c->server_row ? 1 : 0);
    c->Hh = c->top + c->row_h * (double)rows + 8, c->W = c->label_w + c->plot_w + 16;
    pgf_buf_printf(b,
                   "<div class=\"tlwrap\"><svg class=\"tl\" xmlns=\"http://www.w3.org/2000/svg\" "
                   "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
                   "aria-label=\"session timeline\">\n",
                   c->W, c->Hh, c->W, c->Hh);
    shade_windows(b, s, c->label_w, c->plot_w, c->t1, c->top - 4, c->Hh - 4, false);
    for (int i = 0; i <= 4; i++) {
        uint64_t t = (uint64_t)((double)c->t1 * i / 4.0);
        double x = tl_x(c, t);
        pgf_buf_printf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e1e4ea\"/>"
                       "<text x=\"%.1f\" y=\"14\" text-anchor=\"%s\" fill=\"#5a6270\">",
                       x, c->top - 6, x, c->Hh - 4, x,
                       i == 0   ? "start"
                       : i == 4 ? "end"
                                : "middle");
        dur(b, t);
        H(b, "</text>\n");
    }
    size_t row = 0;
    if (c->server_row) {
        pgf_buf_printf(b, "<text x=\"4\" y=\"%.1f\" fill=\"#5a6270\">server</text>\n",
                       c->top + c->row_h * 0.5 + 4);
        row++;
    }
    for (size_t r = 0; r < c->nshown; r++, row++)
        tl_row(b, c, r, row);
    tl_fault_marks(b, c);
    shade_windows(b, s, c->label_w, c->plot_w, c->t1, 20, c->top - 4, true);
    H(b, "</svg></div>\n");
}

static void timeline(pgf_buf *b, const pgf_report_scenario *s)
{
    if (s->spans.len == 0 && s->marks.len == 0 && s->ops.len == 0) {
        H(b, "<p class=\"note\">no timeline recorded</p>\n");
        return;
    }
    size_t cap = s->spans.len + s->marks.len + s->ops.len + s->vmarks.len + s->checks.len + 1;
    uint64_t *all = malloc(cap * sizeof *all), *fail = malloc(cap * sizeof *fail);
    uint64_t *shown =
        malloc((PGF_REPORT_HTML_MAX_SESSIONS + PGF_REPORT_HTML_MAX_FAILING + 1) * sizeof *shown);
    sess_ix *spx = malloc((s->spans.len + 1) * sizeof *spx),
            *opx = malloc((s->ops.len + 1) * sizeof *opx);
    if (all == NULL || fail == NULL || shown == NULL || spx == NULL || opx == NULL) {
        free(all);
        free(fail);
        free(shown);
        free(spx);
        free(opx);
        b->failed = true;
        return;
    }
    for (size_t i = 0; i < s->spans.len; i++)
        spx[i] = (sess_ix){s->spans.items[i].session, i};
    for (size_t i = 0; i < s->ops.len; i++)
        opx[i] = (sess_ix){s->ops.items[i].session, i};
    qsort(spx, s->spans.len, sizeof *spx, cmp_sess_ix);
    qsort(opx, s->ops.len, sizeof *opx, cmp_sess_ix);
    size_t na = 0;
    for (size_t i = 0; i < s->spans.len; i++)
        all[na++] = s->spans.items[i].session;
    for (size_t i = 0; i < s->ops.len; i++)
        all[na++] = s->ops.items[i].session;
    for (size_t i = 0; i < s->marks.len; i++)
        if (s->marks.items[i].session != 0)
            all[na++] = s->marks.items[i].session;
    size_t nfail = failing_sessions(s, fail);
    for (size_t i = 0; i < nfail; i++)
        all[na++] = fail[i];
    size_t uniq = uniq_u64(all, na);
    /* Every session with a violation first, then the others by id. */
    size_t nshown = 0, nfail_shown = 0;
    for (size_t i = 0; i < nfail && nshown < PGF_REPORT_HTML_MAX_FAILING; i++)
        shown[nshown++] = fail[i];
    nfail_shown = nshown;
    for (size_t i = 0; i < uniq && nshown < nfail_shown + PGF_REPORT_HTML_MAX_SESSIONS; i++)
        if (bsearch(&all[i], fail, nfail, sizeof *fail, cmp_u64) == NULL)
            shown[nshown++] = all[i];
    tl_ctx c = {.s = s,
                .shown = shown,
                .nshown = nshown,
                .nfail = nfail,
                .nfail_shown = nfail_shown,
                .total = s->sessions_total > uniq ? s->sessions_total : uniq,
                .spx = spx,
                .opx = opx};
    c.marks_hidden = (size_t)s->marks_not_kept;
    for (size_t i = 0; i < s->marks.len; i++) {
        if (s->marks.items[i].session == 0)
            c.server_row = true;
        else if (!has_u64(shown, nshown, s->marks.items[i].session))
            c.marks_hidden++;
    }
    uint64_t t0;
    tl_time_range(s, shown, nshown, &t0, &c.t1);
    c.virt = pgf__scenario_virtual(s);
    tl_caption(b, &c);
    tl_chart(b, &c);
    free(all);
    free(fail);
    free(shown);
    free(spx);
    free(opx);
}

/* ---- latency and throughput over time ------------------------------------------------------- */

static int cmp_sample(const void *pa, const void *pb)
{
    const pgf__sample *x = pa, *y = pb;
    if (x->t_ns != y->t_ns)
        return x->t_ns < y->t_ns ? -1 : 1;
    return x->latency_ns < y->latency_ns ? -1 : x->latency_ns > y->latency_ns;
}

/* A bin width with at most ~60 bins over t1: whole seconds for runs of 20 s
 * and more, else 1-2-5 steps down to a millisecond. */
static uint64_t pick_bin(uint64_t t1)
{
    if (t1 >= 20000000000ULL) {
        uint64_t s = 1000000000ULL;
        while (t1 / s > 60)
            s *= t1 / s > 300 ? 10 : 2;
        return s;
    }
    static const uint64_t steps[] = {1000000ULL,   2000000ULL,   5000000ULL,   10000000ULL,
                                     20000000ULL,  50000000ULL,  100000000ULL, 200000000ULL,
                                     500000000ULL, 1000000000ULL};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (t1 / steps[i] <= 60)
            return steps[i];
    return 1000000000ULL;
}

/* A y-axis label: the value as a duration or as a rate. */
static void ylabel(pgf_buf *b, double x, double y, double v, bool is_dur)
{
    pgf_buf_printf(b,
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"10\" "
                   "fill=\"#5a6270\">",
                   x, y + 3);
    if (is_dur)
        dur(b, (uint64_t)v);
    else
        pgf_buf_printf(b, "%.0f/s", v);
    H(b, "</text>\n");
}

/* What the two over-time charts share. */
typedef struct ot_ctx {
    const pgf_report_scenario *s;
    const pgf__sample *v; /* samples sorted by time */
    size_t n, nb;
    uint64_t t1, lmax, bin;
    const uint64_t *ok, *bad; /* per bin */
    double bin_s, rmax;
    bool virt;
    const char *clock;
    double L, P, R, ch, W, Hh;
} ot_ctx;

static double ot_x(const ot_ctx *c, uint64_t t)
{
    return c->L + c->P * ((double)(t) / (double)c->t1);
}

/* The time axis under a chart: five labels and the axis line. */
static void ot_time_axis(pgf_buf *b, const ot_ctx *c)
{
    for (int i = 0; i <= 4; i++) {
        uint64_t t = (uint64_t)((double)c->t1 * i / 4.0);
        pgf_buf_printf(b,
                       "\n<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"%s\" font-size=\"10\" "
                       "fill=\"#5a6270\">",
                       ot_x(c, t), c->ch + 26,
                       i == 0   ? "start"
                       : i == 4 ? "end"
                                : "middle");
        dur(b, t);
        H(b, "</text>");
    }
    pgf_buf_printf(b,
                   "\n<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#8a929e\"/>"
                   "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"11\" "
                   "fill=\"#5a6270\">time since start (%s)</text>\n",
                   c->L, c->ch + 10, c->L + c->P, c->ch + 10, c->L + c->P / 2, c->ch + 44,
                   c->virt ? "virtual" : "wall clock");
}

/* Horizontal grid lines with y labels up to vmax. */
static void ot_grid(pgf_buf *b, const ot_ctx *c, double vmax, bool is_dur)
{
    for (int i = 0; i <= 4; i++) {
        double y = 10 + c->ch - c->ch * i / 4.0;
        pgf_buf_printf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eef0f4\"/>",
                       c->L, y, c->L + c->P, y);
        ylabel(b, c->L - 4, y, vmax * i / 4.0, is_dur);
    }
}

/* Latency over time: one dot per health check. */
static void ot_latency(pgf_buf *b, const ot_ctx *c)
{
    size_t stride = c->n > 4000 ? (c->n + 3999) / 4000 : 1;
    unsigned long long drawn = (c->n + stride - 1) / stride,
                       all = (unsigned long long)c->n + c->s->samples_dropped;
    pgf_buf_printf(b,
                   "<div class=\"ot\"><figure class=\"chart\"><figcaption><b>latency over "
                   "time</b> &#183; each dot is one health check, at the time it ended "
                   "(%s)",
                   c->clock);
    if (drawn < all)
        pgf_buf_printf(b, "; %llu of %llu checks, a uniform sample", drawn, all);
    H(b, "</figcaption>\n");
    pgf_buf_printf(b,
                   "<svg class=\"lot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
                   "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"latency "
                   "over time\">\n",
                   c->W, c->Hh, c->W, c->Hh);
    shade_windows(b, c->s, c->L, c->P, c->t1, 8, c->ch + 10, false);
    ot_grid(b, c, (double)c->lmax, true);
    for (size_t i = 0; i < c->n; i += stride) {
        double x = ot_x(c, c->v[i].t_ns),
               y = 10 + c->ch - c->ch * ((double)c->v[i].latency_ns / (double)c->lmax);
        pgf_buf_printf(b,
                       "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.2\" fill=\"%s\" "
                       "fill-opacity=\"0.6\"/>",
                       x, y, c->v[i].outcome == PGF_REPORT_HEALTHY ? "#4e79a7" : "#e15759");
    }
    ot_time_axis(b, c);
    H(b, "</svg></figure>\n");
}

/* Throughput: healthy and failed checks per second, stacked per bin. */
static void ot_throughput(pgf_buf *b, const ot_ctx *c)
{
    pgf_buf_printf(b, "<figure class=\"chart\"><figcaption><b>throughput</b> &#183; health "
                      "checks completed per second, in bins of ");
    dur(b, c->bin);
    pgf_buf_printf(b,
                   " of %s; <span style=\"color:#4e79a7\">healthy</span> and "
                   "<span style=\"color:#e15759\">failed</span></figcaption>\n",
                   c->clock);
    pgf_buf_printf(b,
                   "<svg class=\"tput\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
                   "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
                   "aria-label=\"throughput over time\">\n",
                   c->W, c->Hh, c->W, c->Hh);
    shade_windows(b, c->s, c->L, c->P, c->t1, 8, c->ch + 10, false);
    ot_grid(b, c, c->rmax, false);
    uint64_t bin = c->bin, t1 = c->t1;
    double ch = c->ch;
    for (size_t k = 0; k < c->nb; k++) {
        double x0 = ot_x(c, k * bin), x1 = ot_x(c, (k + 1) * bin > t1 ? t1 : (k + 1) * bin);
        double hok = ch * ((double)c->ok[k] / c->bin_s) / c->rmax,
               hbad = ch * ((double)c->bad[k] / c->bin_s) / c->rmax;
        if (c->ok[k] + c->bad[k] == 0)
            continue;
        pgf_buf_printf(b,
                       "<g><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                       "fill=\"#4e79a7\"/><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                       "height=\"%.1f\" fill=\"#e15759\"/><title>",
                       x0 + 0.5, 10 + ch - hok, fmax(x1 - x0 - 1, 0.8), hok, x0 + 0.5,
                       10 + ch - hok - hbad, fmax(x1 - x0 - 1, 0.8), hbad);
        dur(b, k * bin);
        pgf_buf_printf(b, ": %llu healthy, %llu failed</title></g>\n", (unsigned long long)c->ok[k],
                       (unsigned long long)c->bad[k]);
    }
    ot_time_axis(b, c);
    H(b, "</svg></figure></div>\n");
}

static void over_time(pgf_buf *b, const pgf_report_scenario *s)
{
    if (s->samples.len == 0)
        return;
    pgf__sample *v = malloc(s->samples.len * sizeof *v);
    if (v == NULL) {
        b->failed = true;
        return;
    }
    memcpy(v, s->samples.items, s->samples.len * sizeof *v);
    qsort(v, s->samples.len, sizeof *v, cmp_sample);
    size_t n = s->samples.len;
    uint64_t t1 = v[n - 1].t_ns, lmax = 1, tb = s->tput_bin_ns;
    if (tb > 0 && (s->tput_n - 1) * tb > t1)
        t1 = (s->tput_n - 1) * tb;
    if (s->has_run && s->duration_ns > t1)
        t1 = s->duration_ns;
    for (size_t i = 0; i < s->windows.len; i++)
        if (s->windows.items[i].end_ns > t1)
            t1 = s->windows.items[i].end_ns;
    if (t1 == 0)
        t1 = 1;
    for (size_t i = 0; i < n; i++)
        if (v[i].latency_ns > lmax)
            lmax = v[i].latency_ns;
    uint64_t bin = pick_bin(t1);
    if (tb > 0 && bin % tb != 0) /* the run's exact bins, whole, in each of the chart's */
        bin = (bin / tb + 1) * tb;
    size_t nb = (size_t)(t1 / bin) + 1;
    uint64_t *ok = calloc(nb, sizeof *ok), *bad = calloc(nb, sizeof *bad);
    if (ok == NULL || bad == NULL) {
        free(ok);
        free(bad);
        free(v);
        b->failed = true;
        return;
    }
    if (tb > 0) { /* every check, counted by the run */
        for (size_t i = 0; i < s->tput_n; i++) {
            size_t k = (size_t)(i * tb / bin);
            ok[k] += s->tput_ok[i];
            bad[k] += s->tput_bad[i];
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            size_t k = (size_t)(v[i].t_ns / bin);
            if (v[i].outcome == PGF_REPORT_HEALTHY)
                ok[k]++;
            else
                bad[k]++;
        }
    }
    double bin_s = (double)bin / 1e9, rmax = 1;
    for (size_t k = 0; k < nb; k++)
        if ((double)(ok[k] + bad[k]) / bin_s > rmax)
            rmax = (double)(ok[k] + bad[k]) / bin_s;
    bool virt = pgf__scenario_virtual(s);
    ot_ctx c = {.s = s,
                .v = v,
                .n = n,
                .nb = nb,
                .t1 = t1,
                .lmax = lmax,
                .bin = bin,
                .ok = ok,
                .bad = bad,
                .bin_s = bin_s,
                .rmax = rmax,
                .virt = virt,
                .clock = virt ? "virtual time (--mode sim)" : "wall-clock time",
                .L = 64,
                .P = 640,
                .R = 24,
                .ch = 150};
    c.W = c.L + c.P + c.R, c.Hh = c.ch + 52;
    ot_latency(b, &c);
    ot_throughput(b, &c);
    if (s->windows.len > 0)
        H(b, "<p class=\"note\">Shaded bands are fault windows: when a fault rule with "
             "from_ms/until_ms was armed.</p>\n");
    free(ok);
    free(bad);
    free(v);
}

/* ---- latency -------------------------------------------------------------------------------- */

#define HBINS (64 * 4)

/* Lowest value of quarter-octave bin `bin` (bins below 16 hold one value each). */
static uint64_t bin_lower(int bin)
{
    if (bin < 16)
        return (uint64_t)bin;
    int e = bin / 4, q = bin % 4;
    return (uint64_t)(16 + 4 * q) << (e - 4);
}

static void latency(pgf_buf *b, const pgf_report_scenario *s)
{
    bool any = false;
    H(b, "<table><tr><th>outcome</th><th>count</th><th>min</th><th>p50</th><th>p90</th>"
         "<th>p99</th><th>max</th><th>mean</th></tr>\n");
    for (int o = 0; o < PGF_REPORT_OUTCOME_COUNT; o++) {
        pgf_report_latency l;
        pgf_report_latency_get(s, (pgf_report_outcome)o, &l);
        if (l.count == 0 && s->outcomes[o] == 0)
            continue;
        any = true;
        pgf_buf_printf(b, "<tr><td>%s</td><td class=\"n\">%llu</td>",
                       pgf_report_outcome_name((pgf_report_outcome)o),
                       (unsigned long long)s->outcomes[o]);
        uint64_t v[] = {l.min, l.p50, l.p90, l.p99, l.max, l.mean};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
            H(b, "<td class=\"n\">");
            if (l.count)
                dur(b, v[i]);
            else
                H(b, "&#8211;");
            H(b, "</td>");
        }
        H(b, "</tr>\n");
    }
    H(b, "</table>\n");
    if (!any) {
        H(b, "<p class=\"note\">no health checks recorded</p>\n");
        return;
    }
    pgf_buf_printf(b, "<p class=\"note\">Latencies are measured on the %s.</p>\n",
                   pgf__scenario_virtual(s)
                       ? "<b>virtual clock</b> of --mode sim (simulated time: 0ns means the "
                         "check finished within one simulated instant)"
                       : "wall clock (monotonic)");
    over_time(b, s);
    /* One bar chart per outcome with samples: power-of-two bins. */
    for (int o = 0; o < PGF_REPORT_OUTCOME_COUNT; o++) {
        const pgf__hist *h = &s->latency[o];
        if (h->count == 0)
            continue;
        /* Quarter-octave bins (4 per power of two) from the 1/16-octave buckets. */
        uint64_t bins[HBINS] = {0};
        int lo = HBINS, hi = 0;
        for (unsigned i = 0; i < PGF__HIST_BUCKETS; i++) {
            if (h->buckets[i] == 0)
                continue;
            int e = i < PGF__HIST_SUB
                        ? (int)i
                        : (int)((i / PGF__HIST_SUB + 3) * 4 + (i % PGF__HIST_SUB) / 4);
            bins[e] += h->buckets[i];
            if (e < lo)
                lo = e;
            if (e > hi)
                hi = e;
        }
        /* A wide range gets wider bins (an octave, or two) so the chart stays
         * readable at the card's width. */
        int g = 1;
        while ((hi - lo + 1) / g > 32)
            g *= 2;
        int nb = (hi - lo) / g + 1;
        uint64_t maxc = 1;
        for (int k = 0; k < nb; k++) {
            uint64_t c = 0;
            for (int e = lo + k * g; e < lo + (k + 1) * g && e < HBINS; e++)
                c += bins[e];
            bins[k] = c; /* k <= lo + k * g: compacting in place is safe */
            if (c > maxc)
                maxc = c;
        }
        double bw = nb > 24 ? 22 : 34, ch = 120, W = 60 + bw * nb + 64, Hh = ch + 74;
        pgf_report_latency l;
        pgf_report_latency_get(s, (pgf_report_outcome)o, &l);
        pgf_buf_printf(b, "<figure class=\"lat\" data-outcome=\"%s\"><figcaption><b>%s</b> ",
                       pgf_report_outcome_name((pgf_report_outcome)o),
                       pgf_report_outcome_name((pgf_report_outcome)o));
        pgf_buf_printf(b, "(%llu samples, %s) &#183; p50 ", (unsigned long long)l.count,
                       pgf__scenario_virtual(s) ? "virtual time" : "wall clock");
        dur(b, l.p50);
        H(b, " &#183; p90 ");
        dur(b, l.p90);
        H(b, " &#183; p99 ");
        dur(b, l.p99);
        H(b, " &#183; max ");
        dur(b, l.max);
        pgf_buf_printf(b,
                       "</figcaption>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
                       "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
                       "aria-label=\"latency histogram\">\n",
                       W, Hh, W, Hh);
        pgf_buf_printf(b,
                       "<line x1=\"58\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#8a929e\"/>"
                       "<text x=\"54\" y=\"16\" text-anchor=\"end\" fill=\"#5a6270\">%llu</text>"
                       "<text x=\"54\" y=\"%.0f\" text-anchor=\"end\" fill=\"#5a6270\">0</text>\n",
                       ch + 10, W - 10, ch + 10, (unsigned long long)maxc, ch + 10);
        for (int k = 0; k < nb; k++) {
            int e = lo + k * g;
            double x = 60 + bw * k, bh = ch * (double)bins[k] / (double)maxc;
            uint64_t from = bin_lower(e);
            pgf_buf_printf(b,
                           "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                           "fill=\"%s\"><title>",
                           x + 1, ch + 10 - bh, bw - 2, bh, o == 0 ? "#4e79a7" : "#e15759");
            dur(b, from);
            H(b, " &#8211; ");
            dur(b, e + g >= HBINS ? UINT64_MAX : bin_lower(e + g) - 1);
            pgf_buf_printf(b, ": %llu</title></rect>\n", (unsigned long long)bins[k]);
            if (k % (nb > 12 ? 4 : 2) == 0) {
                pgf_buf_printf(b,
                               "<text x=\"%.1f\" y=\"%.0f\" font-size=\"10\" fill=\"#5a6270\" "
                               "transform=\"rotate(35 %.1f %.0f)\">",
                               x + 2, ch + 24, x + 2, ch + 24);
                dur(b, from);
                H(b, "</text>\n");
            }
        }
        pgf_buf_printf(b,
                       "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"11\" "
                       "fill=\"#5a6270\">latency (%s)</text>\n",
                       60 + bw * nb / 2, Hh - 4,
                       pgf__scenario_virtual(s) ? "virtual time" : "wall clock");
        H(b, "</svg></figure>\n");
    }
}

/* ---- coverage ------------------------------------------------------------------------------- */
/* (operation x state) coverage: how often the harness called each operation
 * in each state, and how many of those calls were refused (the forbidden
 * ones must be). Rows are operations, columns states, in first-seen order. */
static void op_coverage(pgf_buf *b, const pgf_report_scenario *s)
{
    if (s->opcells.len == 0)
        return;
    const char **op = calloc(s->opcells.len + 1, sizeof *op),
               **st = calloc(s->opcells.len + 1, sizeof *st);
    if (op == NULL || st == NULL) {
        free(op);
        free(st);
        b->failed = true;
        return;
    }
    size_t nop = 0, nst = 0;
    for (size_t i = 0; i < s->opcells.len; i++) {
        const pgf__opcell *c = &s->opcells.items[i];
        size_t j;
        for (j = 0; j < nop && strcmp(op[j], c->op) != 0; j++)
            ;
        if (j == nop)
            op[nop++] = c->op;
        for (j = 0; j < nst && strcmp(st[j], c->state) != 0; j++)
            ;
        if (j == nst)
            st[nst++] = c->state;
    }
    H(b, "<p class=\"note\">Operations called in each session state: calls, and in brackets "
         "how many were refused. Empty cells were never tried.</p>\n");
    H(b, "<div class=\"tlwrap\"><table class=\"heat opcov\"><tr><th>operation \\ state</th>");
    for (size_t j = 0; j < nst; j++) {
        H(b, "<th>");
        T(b, st[j]);
        H(b, "</th>");
    }
    H(b, "</tr>\n");
    for (size_t i = 0; i < nop; i++) {
        H(b, "<tr><th>");
        T(b, op[i]);
        H(b, "</th>");
        for (size_t j = 0; j < nst; j++) {
            const pgf__opcell *c = NULL;
            for (size_t k = 0; k < s->opcells.len && c == NULL; k++)
                if (strcmp(s->opcells.items[k].op, op[i]) == 0 &&
                    strcmp(s->opcells.items[k].state, st[j]) == 0)
                    c = &s->opcells.items[k];
            if (c == NULL)
                H(b, "<td class=\"heat\"></td>");
            else if (c->refused > 0)
                pgf_buf_printf(
                    b, "<td class=\"heat\" title=\"called %llu, refused %llu\">%llu (%llu)</td>",
                    (unsigned long long)c->calls, (unsigned long long)c->refused,
                    (unsigned long long)c->calls, (unsigned long long)c->refused);
            else
                pgf_buf_printf(b, "<td class=\"heat\" title=\"called %llu\">%llu</td>",
                               (unsigned long long)c->calls, (unsigned long long)c->calls);
        }
        H(b, "</tr>\n");
    }
    H(b, "</table></div>\n");
    free(op);
    free(st);
}

static void coverage(pgf_buf *b, const pgf_report_scenario *s)
{
    if (s->cells.len == 0 && s->rules.len == 0) {
        H(b, "<p class=\"note\">no fault rules in this scenario</p>\n");
        return;
    }
    /* Axes in order of first appearance. */
    const char **ph = calloc(s->cells.len + 1, sizeof *ph),
               **ac = calloc(s->cells.len + 1, sizeof *ac);
    if (ph == NULL || ac == NULL) {
        free(ph);
        free(ac);
        b->failed = true;
        return;
    }
    size_t nph = 0, nac = 0;
    uint64_t maxc = 1;
    for (size_t i = 0; i < s->cells.len; i++) {
        const pgf__cell *c = &s->cells.items[i];
        size_t j;
        for (j = 0; j < nph && strcmp(ph[j], c->phase) != 0; j++)
            ;
        if (j == nph)
            ph[nph++] = c->phase;
        for (j = 0; j < nac && strcmp(ac[j], c->action) != 0; j++)
            ;
        if (j == nac)
            ac[nac++] = c->action;
        if (c->fired > maxc)
            maxc = c->fired;
    }
    H(b, "<table class=\"heat\"><tr><th>phase \\ action</th>");
    for (size_t j = 0; j < nac; j++) {
        H(b, "<th>");
        T(b, ac[j]);
        H(b, "</th>");
    }
    H(b, "</tr>\n");
    for (size_t i = 0; i < nph; i++) {
        H(b, "<tr><th>");
        T(b, ph[i]);
        H(b, "</th>");
        for (size_t j = 0; j < nac; j++) {
            const pgf__cell *c = NULL;
            for (size_t k = 0; k < s->cells.len && c == NULL; k++)
                if (strcmp(s->cells.items[k].phase, ph[i]) == 0 &&
                    strcmp(s->cells.items[k].action, ac[j]) == 0)
                    c = &s->cells.items[k];
            if (c == NULL) {
                H(b, "<td class=\"heat\"></td>");
            } else if (c->fired == 0) {
                H(b, "<td class=\"heat\" style=\"background:#fff3c4\" title=\"targeted, never "
                     "fired\">0</td>");
            } else {
                double f = log1p((double)c->fired) / log1p((double)maxc);
                int light = (int)(92 - 50 * f);
                pgf_buf_printf(b,
                               "<td class=\"heat\" style=\"background:hsl(4,70%%,%d%%);"
                               "color:%s\">%llu</td>",
                               light, light < 60 ? "#fff" : "#222", (unsigned long long)c->fired);
            }
        }
        H(b, "</tr>\n");
    }
    H(b, "</table>\n");
    free(ph);
    free(ac);
    if (s->rules.len > 0) {
        size_t never = 0;
        for (size_t i = 0; i < s->rules.len; i++)
            never += s->rules.items[i].fired == 0;
        pgf_buf_printf(b, "<p>%zu rules, <b>%zu never fired</b>%s</p>\n", s->rules.len, never,
                       never ? " (a rule that never fires tests nothing: check its phase and "
                               "probability)"
                             : "");
        H(b, "<table><tr><th>rule</th><th>phase</th><th>action</th><th>fired</th></tr>\n");
        for (size_t i = 0; i < s->rules.len; i++) {
            const pgf__rule *x = &s->rules.items[i];
            pgf_buf_printf(b, "<tr%s><td>", x->fired ? "" : " class=\"bad\"");
            T(b, x->name);
            H(b, "</td><td>");
            T(b, x->phase);
            H(b, "</td><td>");
            T(b, x->action);
            pgf_buf_printf(b, "</td><td class=\"n\">%llu</td></tr>\n",
                           (unsigned long long)x->fired);
        }
        H(b, "</table>\n");
    }
}

/* ---- witness as a sequence diagram ---------------------------------------------------------- */

/* The plain-words sentence of a parsed witness between open and close
 * (escaped for HTML); nothing when there is none to say. */
static void plain_sentence(pgf_buf *b, const pgf_report_check *c, const pgf__wev *ev, size_t n,
                           const char *open, const char *close)
{
    pgf_buf t = PGF_BUF_INIT;
    pgf__witness_sentence(&t, c, ev, n);
    pgf_buf_put_u8(&t, 0);
    if (t.failed) {
        b->failed = true;
    } else if (t.len > 1) {
        pgf_buf_put(b, open, strlen(open));
        T(b, (const char *)t.data);
        pgf_buf_put(b, close, strlen(close));
    }
    pgf_buf_free(&t);
}

static void seq_arrow(pgf_buf *b, double x1, double x2, double y, bool dashed, const char *color)
{
    double d = x2 > x1 ? -7 : 7;
    pgf_buf_printf(b,
                   "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"1.5\"%s/><path d=\"M%.1f,%.1fL%.1f,%.1fL%.1f,%.1fz\" "
                   "fill=\"%s\"/>\n",
                   x1, y, x2, y, color, dashed ? " stroke-dasharray=\"4 3\"" : "", x2, y, x2 + d,
                   y - 4, x2 + d, y + 4, color);
}

static void seq_label(pgf_buf *b, double x, double y, const char *anchor, const char *color,
                      const char *text)
{
    pgf_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" fill=\"%s\">", x, y, anchor,
                   color);
    T(b, text);
    H(b, "</text>\n");
}

#define NZ(p) ((p) ? (p) : "?")

/* A small sequence diagram of the witness: lanes for the application (the
 * health-check loop), the session (its state), a racer and the server. */
static void sequence_diagram(pgf_buf *b, const pgf_report_check *c, pgf__wev *ev, size_t n)
{
    bool has_racer = false, has_server = false;
    for (size_t i = 0; i < n; i++) {
        has_racer |= (pgf__wev_is(&ev[i], "invoke") || pgf__wev_is(&ev[i], "ok") ||
                      pgf__wev_is(&ev[i], "fail") || pgf__wev_is(&ev[i], "info")) &&
                     ev[i].lane == PGF__LANE_RACER;
        has_server |= pgf__wev_is(&ev[i], "fault");
    }
    double lx[PGF__LANES];
    double x = 120;
    lx[PGF__LANE_APP] = x;
    lx[PGF__LANE_SESSION] = x += 190;
    lx[PGF__LANE_RACER] = has_racer ? (x += 250) : -1;
    lx[PGF__LANE_SERVER] = has_server ? (x += 190) : -1;
    double W = x + 90, row = 24, top = 44, Hh = top + row * (double)n + 16;
    pgf_buf_printf(b,
                   "<svg class=\"seq\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
                   "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" style=\"max-width:%.0fpx\" "
                   "role=\"img\" aria-label=\"sequence diagram of the witness\">\n",
                   W, Hh, W, Hh, W);
    static const char *const names[PGF__LANES] = {"application", "session", "racer", "server"};
    for (int l = 0; l < PGF__LANES; l++) {
        if (lx[l] < 0)
            continue;
        pgf_buf_printf(b,
                       "<rect x=\"%.1f\" y=\"4\" width=\"120\" height=\"24\" rx=\"4\" "
                       "fill=\"#eef0f4\" stroke=\"#8a929e\"/><text x=\"%.1f\" y=\"21\" "
                       "text-anchor=\"middle\" font-weight=\"600\">%s",
                       lx[l] - 60, lx[l], names[l]);
        if (l == PGF__LANE_SESSION && c->session)
            pgf_buf_printf(b, " %llu", (unsigned long long)c->session);
        pgf_buf_printf(b,
                       "</text><line x1=\"%.1f\" y1=\"28\" x2=\"%.1f\" y2=\"%.1f\" "
                       "stroke=\"#b8bec8\" stroke-dasharray=\"2 3\"/>\n",
                       lx[l], lx[l], Hh - 4);
    }
    for (size_t i = 0; i < n; i++) {
        const pgf__wev *e = &ev[i];
        double y = top + row * (double)i + 8;
        bool bad = i + 1 == n;
        char lab[256];
        const char *col = bad ? "#d0241b" : "#1d2430";
        pgf_buf_printf(b, "<text x=\"4\" y=\"%.1f\" font-size=\"10\" fill=\"#8a929e\">", y + 4);
        dur(b, e->t);
        H(b, "</text>\n");
        double who = lx[e->lane == PGF__LANE_RACER && lx[PGF__LANE_RACER] >= 0 ? PGF__LANE_RACER
                                                                               : PGF__LANE_APP];
        double ses = lx[PGF__LANE_SESSION];
        if (pgf__wev_is(e, "invoke")) {
            seq_arrow(b, who, ses, y, false, col);
            snprintf(lab, sizeof lab, "%s()", NZ(e->op));
            seq_label(b, (who + ses) / 2, y - 4, "middle", col, lab);
        } else if (pgf__wev_is(e, "ok") || pgf__wev_is(e, "fail") || pgf__wev_is(e, "info")) {
            seq_arrow(b, ses, who, y, true, col);
            if (pgf__wev_is(e, "ok"))
                snprintf(lab, sizeof lab, "%s() ok", NZ(e->op));
            else
                snprintf(lab, sizeof lab, "%s() %s %s", NZ(e->op),
                         pgf__wev_is(e, "fail") ? "failed" : "ended (indeterminate)",
                         e->error ? e->error : "");
            seq_label(b, (who + ses) / 2, y - 4, "middle", col, lab);
        } else if (pgf__wev_is(e, "transition")) {
            pgf_buf tmp = PGF_BUF_INIT;
            pgf_buf_printf(&tmp, "%s \xE2\x86\x92 %s%s%s", e->from ? e->from : "?",
                           e->to ? e->to : "?", bad && c->kind ? "  \xE2\x9C\x97 " : "",
                           bad && c->kind ? c->kind : "");
            pgf_buf_put_u8(&tmp, 0);
            double w = tmp.failed ? 100 : text_width((const char *)tmp.data) * 1.02 + 14;
            pgf_buf_printf(b,
                           "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"18\" rx=\"3\" "
                           "fill=\"%s\" stroke=\"%s\"/>",
                           ses - 8, y - 12, w, bad ? "#fde8e6" : "#ffffff", col);
            pgf_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\"%s>", ses - 2, y + 1, col,
                           bad ? " font-weight=\"700\"" : "");
            if (!tmp.failed)
                T(b, (const char *)tmp.data);
            H(b, "</text>\n");
            pgf_buf_free(&tmp);
        } else if (pgf__wev_is(e, "fault") && lx[PGF__LANE_SERVER] >= 0) {
            seq_arrow(b, lx[PGF__LANE_SERVER], ses, y, false, "#d0241b");
            snprintf(lab, sizeof lab, "fault: %s at %s", NZ(e->action), NZ(e->phase));
            seq_label(b, (lx[PGF__LANE_SERVER] + ses) / 2, y - 4, "middle", "#b3261e", lab);
        } else if (pgf__wev_is(e, "health")) {
            snprintf(lab, sizeof lab, "health: %s", NZ(e->reason));
            seq_label(b, lx[PGF__LANE_APP] - 8, y + 4, "end", col, lab);
        } else {
            seq_label(b, ses + 8, y + 4, "start", "#5a6270", NZ(e->type));
        }
    }
    H(b, "</svg>\n");
}

/* The sentence and the diagram of one failed check's witness. */
static void witness_picture(pgf_buf *b, const pgf_report_check *c)
{
    pgf__wev *ev = calloc(c->witness.len + 1, sizeof *ev);
    if (ev == NULL) {
        b->failed = true;
        return;
    }
    size_t n = pgf__parse_witness(c, ev);
    plain_sentence(b, c, ev, n, "<p class=\"plain\">", "</p>\n");
    if (n > 0) {
        H(b, "<div class=\"tlwrap\">");
        sequence_diagram(b, c, ev, n);
        H(b, "</div>\n");
    }
    for (size_t i = 0; i < n; i++)
        json_decref(ev[i].j);
    free(ev);
}

/* Just the plain-words sentence of a failed check, between open and close
 * (nothing when there is none to say). */
static void check_sentence(pgf_buf *b, const pgf_report_check *c, const char *open,
                           const char *close)
{
    pgf_buf t = PGF_BUF_INIT;
    if (pgf__check_sentence(c, &t) != 0)
        b->failed = true;
    pgf_buf_put_u8(&t, 0);
    if (!t.failed && t.len > 1) {
        pgf_buf_put(b, open, strlen(open));
        T(b, (const char *)t.data);
        pgf_buf_put(b, close, strlen(close));
    }
    pgf_buf_free(&t);
}

/* ---- violations ----------------------------------------------------------------------------- */

static void violations(pgf_buf *b, const pgf_report_scenario *s, size_t idx)
{
    if (s->violations.len > 0) {
        H(b, "<table><tr><th>violation kind</th><th>count</th></tr>\n");
        for (size_t i = 0; i < s->violations.len; i++) {
            H(b, "<tr class=\"bad\"><td>");
            T(b, s->violations.items[i].key);
            pgf_buf_printf(b, "</td><td class=\"n\">%llu</td></tr>\n",
                           (unsigned long long)s->violations.items[i].n);
        }
        H(b, "</table>\n");
    }
    size_t failed = 0;
    for (size_t i = 0; i < s->checks.len; i++) {
        const pgf_report_check *c = s->checks.items[i];
        if (c->passed)
            continue;
        failed++;
        pgf_buf_printf(b, "<div class=\"card violation\" id=\"viol-%zu-%zu\"><b>", idx, i);
        T(b, c->name);
        H(b, "</b>");
        if (c->kind) {
            H(b, " <span class=\"tag fail\">");
            T(b, c->kind);
            H(b, "</span>");
        }
        if (c->session)
            pgf_buf_printf(b, " session %llu", (unsigned long long)c->session);
        H(b, "<p>");
        T(b, c->message ? c->message : "check failed");
        H(b, "</p>\n");
        witness_picture(b, c);
        if (c->witness.len > 0) {
            pgf_buf_printf(b,
                           "<p class=\"note\">witness: the %zu events that led to it, oldest "
                           "first</p><pre class=\"witness\">",
                           c->witness.len);
            for (size_t k = 0; k < c->witness.len; k++) {
                pgf_buf_printf(b, "%3zu  ", k + 1);
                witness_line(b, c->witness.items[k]);
                H(b, "\n");
            }
            H(b, "</pre>\n");
        }
        const char *replay = pgf__scenario_replay(s);
        if (replay) {
            H(b, "<p class=\"note\">reproduce:</p><pre>");
            T(b, replay);
            H(b, "</pre>\n");
        }
        H(b, "</div>\n");
    }
    if (failed == 0)
        pgf_buf_printf(b, "<p class=\"note\">all %zu verdict checks passed</p>\n", s->checks.len);
    else {
        H(b, "<details><summary>passed checks</summary><ul>");
        for (size_t i = 0; i < s->checks.len; i++) {
            if (!s->checks.items[i]->passed)
                continue;
            H(b, "<li>");
            T(b, s->checks.items[i]->name);
            if (s->checks.items[i]->message) {
                H(b, ": ");
                T(b, s->checks.items[i]->message);
            }
            H(b, "</li>");
        }
        H(b, "</ul></details>\n");
    }
}

/* ---- page ----------------------------------------------------------------------------------- */

static void scenario_heading(pgf_buf *b, const pgf_report_scenario *s, const char *prefix,
                             size_t idx)
{
    bool ok = pgf__scenario_passed(s);
    pgf_buf_printf(b, "<h3 id=\"%s-%zu\"><span class=\"tag %s\">%s</span> ", prefix, idx,
                   ok ? "pass" : "fail", ok ? "PASS" : "FAIL");
    T(b, s->name);
    H(b, "</h3>\n");
}

/* The report JSON for a <script type="application/json"> block: '<', '>' and
 * '&' only occur inside JSON strings, where \u003c etc. mean the same, so
 * "</script>" and "<!--" cannot appear. */
static bool embed_json(pgf_buf *b, const pgf_report *r)
{
    json_t *j = pgf_report_to_json(r);
    char *txt = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (txt == NULL)
        return false;
    for (const char *p = txt; *p; p++) {
        if (*p == '<')
            H(b, "\\u003c");
        else if (*p == '>')
            H(b, "\\u003e");
        else if (*p == '&')
            H(b, "\\u0026");
        else
            pgf_buf_put_u8(b, (uint8_t)*p);
    }
    free(txt);
    return true;
}

static const char SCRIPT[] =
    "(function(){\n"
    "  var el=document.getElementById('report-data');\n"
    "  var d=JSON.parse(el.textContent);\n"
    "  if(d.format!=='pgfault-report')throw new Error('not a pgfault report');\n"
    "  if(d.version!==1)throw new Error('unsupported report version '+d.version);\n"
    "  document.documentElement.dataset.scenarios=String(d.scenarios.length);\n"
    "  document.body.dataset.rendered='ok';\n"
    "})();\n";

int pgf_report_write_html(const pgf_report *r, const char *dir, char *err, size_t errlen)
{
    int rc = pgf__report_check_built(r, err, errlen);
    if (rc != 0)
        return rc;
    pgf__totals t;
    pgf__report_totals(r, &t);
    pgf_buf b = PGF_BUF_INIT;
    H(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n<title>");
    pgf_buf_printf(&b, "pgfault %s", t.checks_failed ? "FAIL" : "PASS");
    if (r->name) {
        H(&b, ": ");
        T(&b, r->name);
    }
    H(&b, "</title>\n<script>window.onerror=function(m,s,l){document.documentElement.dataset."
          "error=String(m)+' at line '+l;};</script>\n<style>");
    pgf_buf_put(&b, CSS, sizeof CSS - 1);
    H(&b, "</style></head>\n<body><main>\n");
    verdict(&b, r, &t);
    scenario_table(&b, r);

    H(&b, "<section id=\"state-machine\"><h2>State machine</h2><p class=\"note\">Every "
          "transition the sessions took, with how often. <b style=\"color:#d0241b\">Red</b> "
          "edges are illegal; dashed edges are declared but were never taken.</p>\n");
    for (size_t i = 0; i < r->scenarios.len; i++) {
        H(&b, "<div class=\"card\">");
        scenario_heading(&b, r->scenarios.items[i], "sm", i);
        state_machine(&b, r->scenarios.items[i], i);
        H(&b, "</div>\n");
    }
    H(&b, "</section>\n<section id=\"timeline\"><h2>Timeline</h2><p class=\"note\">Each row "
          "is a session: its operations as bars from call to return, its states as a strip "
          "below them, faults the server injected as red triangles and violations as red "
          "crosses (hover for details).<span class=\"narrow\"> Scroll the timeline "
          "sideways.</span></p>\n");
    for (size_t i = 0; i < r->scenarios.len; i++) {
        H(&b, "<div class=\"card\">");
        scenario_heading(&b, r->scenarios.items[i], "tl", i);
        timeline(&b, r->scenarios.items[i]);
        H(&b, "</div>\n");
    }
    H(&b, "</section>\n<section id=\"latency\"><h2>Health-check latency by outcome</h2>\n");
    for (size_t i = 0; i < r->scenarios.len; i++) {
        H(&b, "<div class=\"card\">");
        scenario_heading(&b, r->scenarios.items[i], "lat", i);
        latency(&b, r->scenarios.items[i]);
        H(&b, "</div>\n");
    }
    H(&b, "</section>\n<section id=\"coverage\"><h2>Fault-site coverage</h2><p "
          "class=\"note\">How often a fault fired at each protocol phase, by action. Yellow "
          "cells were targeted by a rule that never fired. Below it, where the run recorded "
          "it, which operations were called in which session states.</p>\n");
    for (size_t i = 0; i < r->scenarios.len; i++) {
        H(&b, "<div class=\"card\">");
        scenario_heading(&b, r->scenarios.items[i], "cov", i);
        coverage(&b, r->scenarios.items[i]);
        op_coverage(&b, r->scenarios.items[i]);
        H(&b, "</div>\n");
    }
    pgf_buf_printf(&b, "</section>\n<section id=\"violations\"><h2>Violations (%llu)</h2>\n",
                   (unsigned long long)t.violations);
    for (size_t i = 0; i < r->scenarios.len; i++) {
        H(&b, "<div class=\"card\">");
        scenario_heading(&b, r->scenarios.items[i], "viol", i);
        violations(&b, r->scenarios.items[i], i);
        H(&b, "</div>\n");
    }
    H(&b, "</section>\n");
    if (json_object_size(r->config) > 0) {
        char *cfg = json_dumps(r->config, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        H(&b, "<section id=\"config\"><h2>Configuration</h2><details><summary>effective "
              "configuration</summary><pre>");
        if (cfg == NULL)
            b.failed = true;
        else
            T(&b, cfg);
        free(cfg);
        H(&b, "</pre></details></section>\n");
    }
    H(&b, "</main>\n<script type=\"application/json\" id=\"report-data\">");
    if (!embed_json(&b, r))
        b.failed = true;
    H(&b, "</script>\n<script>");
    pgf_buf_put(&b, SCRIPT, sizeof SCRIPT - 1);
    H(&b, "</script>\n</body></html>\n");
    if (b.failed) {
        pgf_buf_free(&b);
        return pgf__report_err(err, errlen, PGF_ENOMEM, "%s/report.html: out of memory", dir);
    }
    rc = pgf_atomic_write(dir, "report.html", b.data, b.len, err, errlen);
    pgf_buf_free(&b);
    return rc;
}
