/* outdir.h - a run's output directory, committed as one set.
 *
 * A run never writes into OUT directly. pgf_outdir_begin() makes a private
 * staging directory, OUT/.pgfault-new.PID.XXXXXX, and every file of the run
 * (history.jsonl, faults.jsonl, the reports, NAME/ subdirectories of a
 * suite, *.shrunk.yaml) is written there. pgf_outdir_commit() then:
 *   1. fsyncs and hashes every staged file, and writes the new
 *      manifest.json (run id, every file's path, size and SHA-256) into the
 *      staging directory: from here on the set is complete on disk;
 *   2. renames each staged file over its place in OUT (the old file kept as
 *      a hard link until the end, so a failed rename is rolled back);
 *   3. removes the files the previous manifest listed that this run did not
 *      make (a suite's old scenario directories), renames manifest.json
 *      into OUT last, fsyncs, and deletes the staging directory.
 * Any failure before step 3 leaves the previous run's files exactly as they
 * were. A crash (SIGKILL, power) before step 1 ends leaves them too; a crash
 * in step 2 leaves OUT's old manifest.json beside some new files, which
 * readers detect (pgf_outdir_verify(): the hashes differ) and the next
 * pgf_outdir_begin() on OUT completes (the staging directory still holds
 * the rest of the set and its manifest). Entries of OUT that no manifest
 * lists (a user's own files, OUT/replay/) are never touched.
 *
 * What this does not do: lock OUT against two runs at once (each commits
 * its own complete set; the last one wins), or write file content (the
 * writers do, through atomic.h).
 */
#ifndef PGF_OUTDIR_H
#define PGF_OUTDIR_H

#include <stdbool.h>
#include <stddef.h>

#include "pgfault/err.h"

/* Longest --out accepted: room for the staging directory, a scenario name
 * and a temp file name inside PATH_MAX with margin. */
#define PGF_OUTDIR_MAX 1024

typedef struct pgf_outdir pgf_outdir;

/* Check an --out value before anything is created: its length against
 * PGF_OUTDIR_MAX and each component against NAME_MAX. 0, or PGF_EINVAL
 * with a message. */
PGF_NODISCARD int pgf_outdir_check_path(const char *out, char *err, size_t errlen);
/* Create OUT (and parents), finish or remove what an earlier crashed run
 * left there, and make the staging directory. Caller frees with
 * pgf_outdir_free() (which aborts an uncommitted set). */
PGF_NODISCARD int pgf_outdir_begin(const char *out, pgf_outdir **od, char *err, size_t errlen);
/* Where to write the run's files (the staging directory); borrowed. */
const char *pgf_outdir_stage(const pgf_outdir *od);
/* OUT as given; borrowed. */
const char *pgf_outdir_final(const pgf_outdir *od);
/* This run's id ("20261130T180102Z-4242-1a2b3c4d"), also in manifest.json. */
const char *pgf_outdir_run_id(const pgf_outdir *od);
/* Make the staged set OUT's content (see above). On failure the previous
 * set is intact and err names the file and the system error. */
PGF_NODISCARD int pgf_outdir_commit(pgf_outdir *od, char *err, size_t errlen);
/* Discard the staged files (OUT untouched) and free. NULL is a no-op. */
void pgf_outdir_free(pgf_outdir *od);

/* For readers (`pgfault check`, `pgfault replay`): if FILE belongs to a
 * committed set (listed in manifest.json in its directory or the one
 * above), verify its size and SHA-256. 0 when it matches or no manifest
 * lists it (*run_id set to the set's id or NULL; optional); PGF_EINVAL with
 * a message when it does not (a file changed after the run, or a write
 * interrupted in step 2); PGF_EIO when it cannot be read. */
PGF_NODISCARD int pgf_outdir_verify(const char *file, char *run_id, size_t run_id_len, char *err,
                                    size_t errlen);

#endif
