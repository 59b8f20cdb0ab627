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
    "figure.lat{display:inline-block;vertical-align:top;margin:10px 24px 4px 0}"
    ".violation{border-left:5px solid #b3261e}";

/* ---- verdict -------------------------------------------------------------------------------- */

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
        pgf_buf_printf(b, "all %zu checks passed in %zu scenario%s", t->checks, t->scenarios,
                       t->scenarios == 1 ? "" : "s");
    else
        pgf_buf_printf(b, "%zu of %zu checks failed in %zu of %zu scenario%s", t->checks_failed,
                       t->checks, t->scenarios_failed, t->scenarios, t->scenarios == 1 ? "" : "s");
    pgf_buf_printf(b, " &#183; %llu health checks &#183; %llu violations</p>\n",
                   (unsigned long long)t->health_checks, (unsigned long long)t->violations);
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
    if (r->mode && strcmp(r->mode, "sim") == 0)
        H(b, " (virtual time)");
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
         "<tr><th>verdict</th><th>scenario</th><th>checks failed</th><th>health checks</th>"
         "<th>violations</th><th>healthy p99</th><th>first failure</th></tr>\n");
    for (size_t i = 0; i < r->scenarios.len; i++) {
        const pgf_report_scenario *s = r->scenarios.items[i];
        bool ok = pgf__scenario_passed(s);
        size_t failed = 0;
        const pgf_report_check *first = NULL;
        for (size_t j = 0; j < s->checks.len; j++)
            if (!s->checks.items[j]->passed && failed++ == 0)
                first = s->checks.items[j];
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
                   "<details%s><summary>%zu edges (table)</summary><table>"
                   "<tr><th>from</th><th>to</th><th>op</th><th>count</th><th>legal</th></tr>\n",
                   s->edges.len <= 12 ? " open" : "", s->edges.len);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < s->edges.len; i++) {
            const pgf__edge *e = &s->edges.items[i];
            if (e->legal != (pass == 1))
                continue;
            pgf_buf_printf(b, "<tr%s><td>", e->legal ? "" : " class=\"bad\"");
            T(b, e->from);
            H(b, "</td><td>");
            T(b, e->to);
            H(b, "</td><td>");
            T(b, e->op ? e->op : "");
            pgf_buf_printf(b, "</td><td class=\"n\">%llu</td><td>%s</td></tr>\n",
                           (unsigned long long)e->count, e->legal ? "yes" : "<b>NO</b>");
        }
    }
    H(b, "</table></details>\n");
}

/* ---- timeline ------------------------------------------------------------------------------- */

static int cmp_span_ptr(const void *pa, const void *pb)
{
    const pgf__span *x = *(const pgf__span *const *)pa, *y = *(const pgf__span *const *)pb;
    if (x->session != y->session)
        return x->session < y->session ? -1 : 1;
    if (x->start_ns != y->start_ns)
        return x->start_ns < y->start_ns ? -1 : 1;
    return 0;
}

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

static void timeline(pgf_buf *b, const pgf_report_scenario *s)
{
    if (s->spans.len == 0 && s->marks.len == 0) {
        H(b, "<p class=\"note\">no timeline recorded</p>\n");
        return;
    }
    /* Distinct sessions in id order. */
    size_t ns_all = 0;
    uint64_t *all = malloc((s->spans.len + s->marks.len + 1) * sizeof *all);
    const pgf__span **sp = malloc((s->spans.len + 1) * sizeof *sp);
    uint64_t *shown = malloc((PGF_REPORT_HTML_MAX_SESSIONS + 1) * sizeof *shown);
    if (all == NULL || sp == NULL || shown == NULL) {
        free(all);
        free(sp);
        free(shown);
        b->failed = true;
        return;
    }
    for (size_t i = 0; i < s->spans.len; i++) {
        sp[i] = &s->spans.items[i];
        all[ns_all++] = s->spans.items[i].session;
    }
    for (size_t i = 0; i < s->marks.len; i++)
        if (s->marks.items[i].session != 0)
            all[ns_all++] = s->marks.items[i].session;
    qsort(sp, s->spans.len, sizeof *sp, cmp_span_ptr);
    qsort(all, ns_all, sizeof *all, cmp_u64);
    size_t uniq = 0;
    for (size_t i = 0; i < ns_all; i++)
        if (uniq == 0 || all[uniq - 1] != all[i])
            all[uniq++] = all[i];
    /* Sessions named by failed checks first, then in id order, capped. */
    size_t nshown = 0;
    for (size_t i = 0; i < s->checks.len && nshown < PGF_REPORT_HTML_MAX_SESSIONS; i++) {
        const pgf_report_check *c = s->checks.items[i];
        if (!c->passed && c->session != 0 && !has_u64(shown, nshown, c->session) &&
            bsearch(&c->session, all, uniq, sizeof *all, cmp_u64) != NULL)
            shown[nshown++] = c->session;
    }
    for (size_t i = 0; i < uniq && nshown < PGF_REPORT_HTML_MAX_SESSIONS; i++)
        if (!has_u64(shown, nshown, all[i]))
            shown[nshown++] = all[i];
    bool server_row = false;
    for (size_t i = 0; i < s->marks.len; i++)
        server_row |= s->marks.items[i].session == 0;

    /* Time range over what is drawn. */
    uint64_t t0 = UINT64_MAX, t1 = 0;
    for (size_t i = 0; i < s->spans.len; i++) {
        if (!has_u64(shown, nshown, s->spans.items[i].session))
            continue;
        if (s->spans.items[i].start_ns < t0)
            t0 = s->spans.items[i].start_ns;
        if (s->spans.items[i].end_ns > t1)
            t1 = s->spans.items[i].end_ns;
    }
    size_t marks_hidden = 0;
    for (size_t i = 0; i < s->marks.len; i++) {
        const pgf__mark *m = &s->marks.items[i];
        if (m->session != 0 && !has_u64(shown, nshown, m->session)) {
            marks_hidden++;
            continue;
        }
        if (m->t_ns < t0)
            t0 = m->t_ns;
        if (m->t_ns > t1)
            t1 = m->t_ns;
    }
    if (t0 == UINT64_MAX)
        t0 = t1 = 0;
    if (t1 <= t0)
        t1 = t0 + 1;

    const double label_w = 96, plot_w = 1000, row_h = 16, top = 26;
    size_t rows = nshown + (server_row ? 1 : 0);
    double Hh = top + row_h * (double)rows + 12;
    double span_ns = (double)(t1 - t0);
#define X(t) (label_w + plot_w * ((double)((t)-t0) / span_ns))
    pgf_buf_printf(b,
                   "<p class=\"note\">showing %zu of %zu sessions%s; time runs left to right "
                   "from ",
                   nshown, uniq,
                   uniq > nshown ? " (sessions named by failed checks first, then by id)" : "");
    dur(b, t0);
    H(b, " to ");
    dur(b, t1);
    if (marks_hidden)
        pgf_buf_printf(b, "; %zu fault marks on sessions not shown", marks_hidden);
    H(b, ".</p>\n<div class=\"legend\">");
    for (size_t i = 0; i < s->states.len; i++) {
        pgf_buf_printf(b, "<span><i class=\"sw\" style=\"background:%s\"></i>",
                       palette[i % PALETTE_N]);
        T(b, s->states.items[i]);
        H(b, "</span>");
    }
    H(b, "<span><svg width=\"12\" height=\"12\"><path d=\"M1,1L11,1L6,11z\" "
         "fill=\"#d0241b\"/></svg> fault fired</span></div>\n");
    pgf_buf_printf(b,
                   "<svg class=\"tl\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
                   "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
                   "aria-label=\"session timeline\">\n",
                   label_w + plot_w + 20, Hh, label_w + plot_w + 20, Hh);
    /* Axis with five ticks. */
    for (int i = 0; i <= 4; i++) {
        uint64_t t = t0 + (uint64_t)((double)(t1 - t0) * i / 4.0);
        double x = X(t);
        pgf_buf_printf(b,
                       "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e1e4ea\"/>"
                       "<text x=\"%.1f\" y=\"14\" text-anchor=\"%s\" fill=\"#5a6270\">",
                       x, top - 4, x, Hh - 8, x,
                       i == 0   ? "start"
                       : i == 4 ? "end"
                                : "middle");
        dur(b, t);
        H(b, "</text>\n");
    }
    size_t row = 0;
    if (server_row) {
        pgf_buf_printf(b, "<text x=\"4\" y=\"%.1f\" fill=\"#5a6270\">server</text>\n",
                       top + row_h * 0.5 + 4);
        row++;
    }
    for (size_t r = 0; r < nshown; r++, row++) {
        double y = top + row_h * (double)row;
        bool flagged = false;
        for (size_t i = 0; i < s->checks.len; i++)
            flagged |= !s->checks.items[i]->passed && s->checks.items[i]->session == shown[r];
        pgf_buf_printf(b, "<text x=\"4\" y=\"%.1f\"%s>session %llu</text>\n", y + row_h * 0.5 + 4,
                       flagged ? " fill=\"#d0241b\" font-weight=\"700\"" : "",
                       (unsigned long long)shown[r]);
        /* spans of this session: binary search its first one in the sorted array */
        size_t lo = 0, hi = s->spans.len;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (sp[mid]->session < shown[r])
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t i = lo; i < s->spans.len && sp[i]->session == shown[r]; i++) {
            double x0 = X(sp[i]->start_ns), x1 = X(sp[i]->end_ns);
            pgf_buf_printf(b,
                           "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" "
                           "fill=\"%s\"><title>session %llu: ",
                           x0, y + 2, fmax(x1 - x0, 0.8), row_h - 4, state_color(s, sp[i]->state),
                           (unsigned long long)shown[r]);
            T(b, sp[i]->state);
            H(b, " ");
            dur(b, sp[i]->start_ns);
            H(b, " &#8211; ");
            dur(b, sp[i]->end_ns);
            H(b, "</title></rect>\n");
        }
    }
    /* Fault marks on top. */
    for (size_t i = 0; i < s->marks.len; i++) {
        const pgf__mark *m = &s->marks.items[i];
        size_t r;
        if (m->session == 0) {
            r = 0;
        } else {
            for (r = 0; r < nshown && shown[r] != m->session; r++)
                ;
            if (r == nshown)
                continue;
            r += server_row ? 1 : 0;
        }
        double x = X(m->t_ns), y = top + row_h * (double)r;
        pgf_buf_printf(b,
                       "<path d=\"M%.1f,%.1fL%.1f,%.1fL%.1f,%.1fz\" fill=\"#d0241b\" "
                       "stroke=\"#fff\" stroke-width=\"0.8\"><title>fault at ",
                       x - 5, y + 1, x + 5, y + 1, x, y + row_h - 3);
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
#undef X
    H(b, "</svg>\n");
    free(all);
    free(sp);
    free(shown);
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
        uint64_t maxc = 1;
        for (int e = lo; e <= hi; e++)
            if (bins[e] > maxc)
                maxc = bins[e];
        int nb = hi - lo + 1;
        double bw = nb > 24 ? 22 : 34, ch = 120, W = 60 + bw * nb + 20, Hh = ch + 58;
        pgf_report_latency l;
        pgf_report_latency_get(s, (pgf_report_outcome)o, &l);
        pgf_buf_printf(b, "<figure class=\"lat\" data-outcome=\"%s\"><figcaption><b>%s</b> ",
                       pgf_report_outcome_name((pgf_report_outcome)o),
                       pgf_report_outcome_name((pgf_report_outcome)o));
        pgf_buf_printf(b, "(%llu samples) &#183; p50 ", (unsigned long long)l.count);
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
        for (int e = lo; e <= hi; e++) {
            double x = 60 + bw * (e - lo), bh = ch * (double)bins[e] / (double)maxc;
            uint64_t from = bin_lower(e);
            pgf_buf_printf(b,
                           "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                           "fill=\"%s\"><title>",
                           x + 1, ch + 10 - bh, bw - 2, bh, o == 0 ? "#4e79a7" : "#e15759");
            dur(b, from);
            H(b, " &#8211; ");
            dur(b, e + 1 >= HBINS ? UINT64_MAX : bin_lower(e + 1) - 1);
            pgf_buf_printf(b, ": %llu</title></rect>\n", (unsigned long long)bins[e]);
            if ((e - lo) % (nb > 12 ? 4 : 2) == 0) {
                pgf_buf_printf(b,
                               "<text x=\"%.1f\" y=\"%.0f\" font-size=\"10\" fill=\"#5a6270\" "
                               "transform=\"rotate(35 %.1f %.0f)\">",
                               x + 2, ch + 24, x + 2, ch + 24);
                dur(b, from);
                H(b, "</text>\n");
            }
        }
        H(b, "</svg></figure>\n");
    }
}

/* ---- coverage ------------------------------------------------------------------------------- */

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
        pgf_buf_printf(b, "<p class=\"note\">all %zu checks passed</p>\n", s->checks.len);
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
          "is a session, coloured by state; red triangles are faults the server injected "
          "(hover for details).</p>\n");
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
          "cells were targeted by a rule that never fired.</p>\n");
    for (size_t i = 0; i < r->scenarios.len; i++) {
        H(&b, "<div class=\"card\">");
        scenario_heading(&b, r->scenarios.items[i], "cov", i);
        coverage(&b, r->scenarios.items[i]);
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
