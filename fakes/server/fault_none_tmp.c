/* temporary: fault engine stub until the fault module lands */
#include <stdlib.h>
#include "fault.h"
struct pgf_fault_conn {
    int x;
};
pgf_fault_conn *pgf_fault_conn_new(pgf_fault_engine *e, uint64_t id)
{
    (void)e;
    (void)id;
    return calloc(1, sizeof(pgf_fault_conn));
}
void pgf_fault_conn_free(pgf_fault_conn *c)
{
    free(c);
}
bool pgf_fault_decide(pgf_fault_engine *e, pgf_fault_conn *c, pgf_phase p, const pgf_fault_ctx *x,
                      pgf_fault_action *o)
{
    (void)e;
    (void)c;
    (void)p;
    (void)x;
    (void)o;
    return false;
}
const char *pgf_phase_name(pgf_phase p)
{
    (void)p;
    return "?";
}
const char *pgf_action_name(pgf_action_kind a)
{
    (void)a;
    return "?";
}
