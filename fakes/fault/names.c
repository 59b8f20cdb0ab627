/* names.c - phase and action names from the X-macro tables in fault.h, and
 * which actions make sense at which phase. No state. */
#include <string.h>

#include "pgfault/enum_names.h"
#include "pgfault/fault.h"
#include "fault_int.h"

#define PGF__PHASE_STR(name, str) str,
PGF_ENUM_NAMES(pgf_phase, pgf_phase_name, pgf_phase_parse, PGF_PHASE_COUNT, "?",
               PGF_PHASE_MAP(PGF__PHASE_STR))
#undef PGF__PHASE_STR

#define PGF__ACTION_STR(name, str) str,
PGF_ENUM_NAMES(pgf_action_kind, pgf_action_name, pgf_action_parse, PGF_ACTION_COUNT, "?",
               PGF_ACTION_MAP(PGF__ACTION_STR))
#undef PGF__ACTION_STR

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
