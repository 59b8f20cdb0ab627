/* fuzz_rules.c - libFuzzer target for the fault-rule parser (YAML and JSON).
 *
 * Any input must give either a rule set or an error message, never a
 * crash, a leak or a hang. A set that parses must also survive the round
 * trip through its canonical JSON (same count, same canonical text) and a
 * pass of decisions at every phase. Built as a real fuzzer with
 * -DPGF_FUZZ=ON and clang; the corpus in corpus/rules/ is replayed as an
 * ordinary ctest (fuzz_rules_corpus) in every build. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/fault.h"
#include "pgfault/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_set(pgf_fault_rules *r)
{
    char err[1024];
    char *j = pgf_fault_rules_to_json(r);
    if (j == NULL)
        abort();
    pgf_fault_rules *back = pgf_fault_rules_parse_json(j, strlen(j), "canon", err, sizeof err);
    if (back == NULL || pgf_fault_rules_count(back) != pgf_fault_rules_count(r))
        abort(); /* the canonical form must parse back */
    for (size_t i = 0; i < pgf_fault_rules_count(r); i++)
        if (strcmp(pgf_fault_rules_rule_json(r, i), pgf_fault_rules_rule_json(back, i)) != 0)
            abort();
    free(j);
    pgf_fault_rules_free(back);

    pgf_fault_engine *e = pgf_fault_engine_new(1);
    pgf_fault_engine_set_rules(e, pgf_fault_rules_ref(r));
    pgf_fault_conn *c = pgf_fault_conn_new(e, 3);
    pgf_fault_ctx ctx = {.conn_id = 3,
                         .user = "u%d",
                         .database = "d",
                         .application_name = "a",
                         .client_addr = "127.0.0.1:1",
                         .query = "SELECT 1"};
    pgf_fault_action a;
    for (int round = 0; round < 3; round++)
        for (int p = 0; p < PGF_PHASE_COUNT; p++)
            (void)pgf_fault_decide(e, c, (pgf_phase)p, &ctx, &a);
    pgf_fault_conn_free(c);
    pgf_fault_engine_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    if (size > 65536)
        return 0;
    const char *text = (const char *)data;
    pgf_fault_rules *y = pgf_fault_rules_parse_yaml(text, size, "fuzz.yaml", err, sizeof err);
    if (y != NULL)
        check_set(y);
    else if (err[0] == '\0')
        abort(); /* every failure must say why */
    pgf_fault_rules_free(y);
    pgf_fault_rules *j = pgf_fault_rules_parse_json(text, size, "fuzz.json", err, sizeof err);
    if (j != NULL)
        check_set(j);
    else if (err[0] == '\0')
        abort();
    pgf_fault_rules_free(j);
    return 0;
}
