/* names.c - phase and action names from the X-macro tables in fault.h, and
 * which actions make sense at which phase. No state. */
#include <string.h>

#include "pgfault/fault.h"
#include "fault_int.h"

static const char *const phase_names[] = {
#define PGF__PHASE_STR(name, str) str,
    PGF_PHASE_MAP(PGF__PHASE_STR)
#undef PGF__PHASE_STR
};

static const char *const action_names[] = {
#define PGF__ACTION_STR(name, str) str,
    PGF_ACTION_MAP(PGF__ACTION_STR)
#undef PGF__ACTION_STR
};

const char *pgf_phase_name(pgf_phase p)
{
    if ((int)p < 0 || p >= PGF_PHASE_COUNT)
        return "?";
    return phase_names[p];
}

int pgf_phase_parse(const char *s)
{
    for (int i = 0; s != NULL && i < PGF_PHASE_COUNT; i++)
        if (strcmp(s, phase_names[i]) == 0)
            return i;
    return -1;
}

const char *pgf_action_name(pgf_action_kind a)
{
    if ((int)a < 0 || a >= PGF_ACTION_COUNT)
        return "?";
    return action_names[a];
}

int pgf_action_parse(const char *s)
{
    for (int i = 0; s != NULL && i < PGF_ACTION_COUNT; i++)
        if (strcmp(s, action_names[i]) == 0)
            return i;
    return -1;
}

/* Where each action can be carried out. The reasons, phase by phase:
 * - auth-fail only means something while authenticating;
 * - nothing can be sent on a cancel connection (PostgreSQL sends nothing)
 *   or after Terminate, so error/truncate/drip/bandwidth/garbage are out;
 * - truncate cuts a message the server is about to send, so it needs a
 *   "before X" phase (or `query`, whose response batch it cuts);
 * - refuse is an accept-time decision. */
bool pgf__action_valid_at(pgf_action_kind a, pgf_phase p)
{
    bool sends = p != PGF_PHASE_CANCEL && p != PGF_PHASE_TERMINATE;
    switch (a) {
    case PGF_ACTION_NONE:
    case PGF_ACTION_CLOSE:
    case PGF_ACTION_RESET:
    case PGF_ACTION_HALF_CLOSE:
    case PGF_ACTION_STALL:
    case PGF_ACTION_DELAY:
        return true;
    case PGF_ACTION_AUTH_FAIL:
        return p == PGF_PHASE_STARTUP || p == PGF_PHASE_AUTH_REQUEST ||
               p == PGF_PHASE_AUTH_RESPONSE || p == PGF_PHASE_SASL_CONTINUE ||
               p == PGF_PHASE_SASL_FINAL || p == PGF_PHASE_AUTH_OK;
    case PGF_ACTION_ERROR:
    case PGF_ACTION_DRIP:
    case PGF_ACTION_BANDWIDTH:
    case PGF_ACTION_GARBAGE:
        return sends;
    case PGF_ACTION_TRUNCATE:
        switch (p) {
        case PGF_PHASE_SSL_REQUEST:
        case PGF_PHASE_AUTH_REQUEST:
        case PGF_PHASE_SASL_CONTINUE:
        case PGF_PHASE_SASL_FINAL:
        case PGF_PHASE_AUTH_OK:
        case PGF_PHASE_PARAMETER_STATUS:
        case PGF_PHASE_READY:
        case PGF_PHASE_QUERY:
        case PGF_PHASE_ROW_DESCRIPTION:
        case PGF_PHASE_DATA_ROW:
        case PGF_PHASE_COMMAND_COMPLETE:
            return true;
        default:
            return false;
        }
    case PGF_ACTION_REFUSE:
        return p == PGF_PHASE_ACCEPT;
    case PGF_ACTION_COUNT:
        break;
    }
    return false;
}
