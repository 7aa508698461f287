/* The verify job (see backup.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup_priv.h"
#include "vault/vault.h"
#include "cleanup.h"
#include "db/backup.h"
#include "err.h"
#include "hash.h"
#include "log.h"
#include "text.h"

/* How many differing pieces a verification names one by one. */
#define PIECES_NAMED 10

/* Records one problem as a line of *text. */
static void note(FILE *text, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
note(FILE *text, size_t *n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(text, fmt, ap);
    va_end(ap);
    fputc('\n', text);
    ++*n;
}

/* Notes each piece whose digest differs from the one recorded (at most PIECES_NAMED). */
static void
note_pieces(const struct conf_backup *b, const struct conf_backup_disk *k,
            const struct vault_checksum *sum, FILE *text, size_t *problems)
{
    _cleanup_free_ uint8_t *rec = NULL;
    size_t n_rec = 0, named = 0, differ = 0;

    if (db_backup_disk_pieces(backup_ctx.db, b->id, k->target, &rec, &n_rec) < 0 || !rec) {
        err_clear();
        note(text, problems, "%s: no piece digests are recorded to tell which piece differs",
             k->file);
        return;
    }
    if (n_rec != sum->n_pieces)
        note(text, problems, "%s: the file has %zu pieces of %" PRIu64 " bytes, %zu were recorded",
             k->file, sum->n_pieces, HASH_PIECE_SIZE, n_rec);
    for (size_t i = 0; i < n_rec && i < sum->n_pieces; i++) {
        if (memcmp(rec + i * HASH_SHA256_LEN, sum->pieces + i * HASH_SHA256_LEN, HASH_SHA256_LEN) ==
            0)
            continue;
        differ++;
        if (named++ < PIECES_NAMED)
            note(text, problems, "%s: piece %zu (bytes %" PRIu64 "-%" PRIu64 ") differs", k->file,
                 i, (uint64_t)i * HASH_PIECE_SIZE, (uint64_t)(i + 1) * HASH_PIECE_SIZE - 1);
    }
    if (differ > PIECES_NAMED)
        note(text, problems, "%s: %zu more pieces differ", k->file, differ - PIECES_NAMED);
}

/*
 * Recomputes an image's checksum with the algorithm its row names and notes
 * a mismatch; for piece digests, which pieces differ.
 */
static int
verify_checksum(const struct conf_backup *b, const struct conf_backup_disk *k, const char *path,
                struct backup_job *vr, FILE *text, size_t *problems)
{
    const char *alg = k->checksum_algorithm ? k->checksum_algorithm : HASH_ALG_FILE;
    char hex[HASH_SHA256_HEX_LEN + 1];
    int r;

    if (strcmp(alg, HASH_ALG_PIECES) == 0) {
        _cleanup_(vault_checksum_clear) struct vault_checksum sum = {0};

        r = vault_file_checksum(path, NULL, false, &vr->cancel.cancelled, NULL, &sum);
        if (r == -ECANCELED)
            return r;
        if (r < 0) {
            note(text, problems, "%s: cannot be read: %s", k->file, err_detail());
            return 0;
        }
        if (!k->sha256 || strcmp(sum.digest, k->sha256) != 0) {
            note(text, problems, "%s: checksum mismatch (%s %s, recorded %s)", k->file, alg,
                 sum.digest, k->sha256 ? k->sha256 : "none");
            note_pieces(b, k, &sum, text, problems);
        }
        return 0;
    }
    if (strcmp(alg, HASH_ALG_FILE) != 0) {
        note(text, problems, "%s: unknown checksum algorithm '%s'", k->file, alg);
        return 0;
    }
    r = hash_sha256_file(path, hex);
    if (r < 0) {
        note(text, problems, "%s: cannot be read: %s", k->file, err_detail());
        return 0;
    }
    if (!k->sha256 || strcmp(hex, k->sha256) != 0)
        note(text, problems, "%s: checksum mismatch (sha256 %s, recorded %s)", k->file, hex,
             k->sha256 ? k->sha256 : "none");
    return 0;
}

/* Checks one image: checksum, qcow2 structure, backing file. */
static int
verify_disk(const struct conf_backup *b, const struct conf_backup_disk *k, struct backup_job *vr,
            FILE *text, size_t *problems, bool parent_offsite)
{
    char path[PATH_MAX];
    _cleanup_free_ char *backing = NULL;
    int r;

    r = backup_abs_path(k->file, path, sizeof(path));
    if (r < 0)
        return r;
    if (access(path, F_OK) < 0) {
        note(text, problems, "%s: backup %s disk %s is missing", k->file, b->id, k->target);
        return 0;
    }
    r = verify_checksum(b, k, path, vr, text, problems);
    if (r < 0)
        return r;
    /* An offsite-only parent's images are in a bucket: this image is checked alone. */
    r = parent_offsite ? vault_image_check_alone(path, &vr->cancel)
                       : vault_image_check(path, &vr->cancel);
    if (r == -ECANCELED)
        return r;
    if (r < 0)
        note(text, problems, "%s: %s", k->file, err_detail() ? err_detail() : "check failed");
    r = vault_qcow2_backing(path, &backing);
    if (r < 0) {
        note(text, problems, "%s: %s", k->file, err_detail());
        return 0;
    }
    if ((backing == NULL) != (k->backing == NULL) ||
        (backing && strcmp(backing, k->backing) != 0)) {
        note(text, problems, "%s: backing file is '%s', the catalog says '%s'", k->file,
             backing ? backing : "(none)", k->backing ? k->backing : "(none)");
    } else if (backing && !parent_offsite) {
        char bpath[PATH_MAX];
        const char *slash = strrchr(path, '/');
        snprintf(bpath, sizeof(bpath), "%.*s/%s", (int)(slash - path), path, backing);
        if (access(bpath, R_OK) < 0)
            note(text, problems, "%s: its backing file %s is missing", k->file, backing);
    }
    return 0;
}

int
backup_verify_run(struct job *job, void *data)
{
    struct backup_job *vr = data;
    struct conf_backup *chain[MAX_CHAIN];
    size_t n_chain = 0, problems = 0, files = 0;
    bool parent_offsite = false;
    uint64_t total = 0, done = 0;
    _cleanup_free_ char *text = NULL;
    _cleanup_free_ char *quoted = NULL;
    _cleanup_free_ char *result = NULL;
    size_t text_len = 0;
    char when[40];
    FILE *f;
    int r = 0;

    f = open_memstream(&text, &text_len);
    if (!f)
        return -ENOMEM;
    /* The backup and every backup it stands on, down to the full one. */
    chain[n_chain++] = vr->b;
    while (chain[n_chain - 1]->parent_id && n_chain < MAX_CHAIN) {
        struct conf_backup *p = NULL;
        r = db_backup_get(backup_ctx.db, chain[n_chain - 1]->parent_id, &p);
        if (r == -ENOENT) {
            note(f, &problems, "backup %s stands on backup %s, which is gone",
                 chain[n_chain - 1]->id, chain[n_chain - 1]->parent_id);
            r = 0;
            break;
        }
        if (r < 0)
            break;
        if (p->location) {
            /* Offsite only: its images are in a remote's bucket, not verified here. */
            conf_backup_free(p);
            parent_offsite = true;
            break;
        }
        chain[n_chain++] = p;
    }
    for (size_t c = 0; c < n_chain; c++)
        for (size_t i = 0; i < chain[c]->n_disks; i++)
            total += chain[c]->disks[i].stored_bytes;
    for (size_t c = 0; r >= 0 && c < n_chain; c++) {
        for (size_t i = 0; r >= 0 && i < chain[c]->n_disks; i++) {
            r = verify_disk(chain[c], &chain[c]->disks[i], vr, f, &problems,
                            parent_offsite && c == n_chain - 1);
            files++;
            done += chain[c]->disks[i].stored_bytes;
            job_progress(job, done, total);
            if (job_cancelled(job))
                r = err_set(-ECANCELED, "the verification was cancelled");
        }
    }
    for (size_t c = 1; c < n_chain; c++)
        conf_backup_free(chain[c]);
    if (fclose(f) != 0)
        return -ENOMEM;
    if (r < 0)
        return r;

    r = db_backup_set_verification(backup_ctx.db, vr->b->id, text_now_ms(), problems == 0,
                                   problems ? text : NULL);
    if (r < 0)
        return r;
    text_time_now_rfc3339(when, sizeof(when), false);
    if (text_len && text[text_len - 1] == '\n')
        text[text_len - 1] = '\0';
    quoted = text_json_quote(text ? text : "");
    if (!quoted ||
        asprintf(&result,
                 "{\"backup_id\": \"%s\", \"ok\": %s, \"checked_at\": \"%s\", \"files\": %zu, "
                 "\"backups\": %zu, \"problems\": %s}",
                 vr->b->id, problems ? "false" : "true", when, files, n_chain,
                 problems ? quoted : "\"\"") < 0)
        return -ENOMEM;
    log_info("backup %s verified: %s", vr->b->id,
             problems ? "problems found" : "sound, every checksum matches");
    return job_set_result(job, result);
}

int
core_backup_verify(const char *domain, const char *id, struct conf_job **ret_job)
{
    _cleanup_free_ char *name = NULL;
    struct conf_backup *b = NULL;
    struct backup_job *vr;
    int r;

    r = backup_completed(domain, id, &name, &b);
    if (r < 0)
        return r;
    vr = calloc(1, sizeof(*vr));
    if (!vr) {
        conf_backup_free(b);
        return -ENOMEM;
    }
    vr->b = b;
    return backup_job_submit(BACKUP_JOB_VERIFY, name, vr, ret_job);
}
