/*
 * core/offsite_priv.h - what the files of offsite copies share inside core/:
 *   offsite.c          remotes, their secrets, the check, the bucket's listing
 *   offsite_copy.c     the copy job (uploads, resume)
 *   offsite_restore.c  the restore job (downloads)
 *   offsite_prune.c    the remote prune (a retention applied to a bucket)
 */
#ifndef VV_CORE_OFFSITE_PRIV_H
#define VV_CORE_OFFSITE_PRIV_H

#include <stdbool.h>

#include "conf/remote.h"
#include "jobs.h"
#include "offsite.h"

struct s3_target;
struct frame_key;

/* A remote opened for use: its record with its secret, its S3 target, its key. */
struct offsite_remote {
    struct conf_remote r;
    struct s3_target *t;
    struct frame_key *key; /* NULL when copies are not encrypted */
};

/* Opens remote name into *ret (offsite_remote_close). -ENOENT with a detail when there is none. */
int offsite_remote_open(const char *name, struct offsite_remote *ret);
void offsite_remote_close(struct offsite_remote *o);

/* The object key of rel under o's prefix ("PREFIX/rel", or rel) into buf. -ENAMETOOLONG. */
int offsite_key(const struct offsite_remote *o, const char *rel, char *buf, size_t size);

/* Sets a detail "remote 'NAME': what: <S3's answer>" and returns r. */
struct s3_result;
int offsite_fail(const struct offsite_remote *o, int r, const char *what,
                 const struct s3_result *res);

/* Reads manifest key into a new *ret. -ENOENT when there is none; -EBADMSG with a detail. */
int offsite_manifest_get(const struct offsite_remote *o, const char *key,
                         struct conf_manifest **ret);

/*
 * Lists the objects of o's bucket whose keys start with prefix, page by page, calling
 * fn(key, data) for each (fn may take *key, leaving NULL). fn's negative return ends the
 * listing with it, a positive one ends it with 0. A failed listing: offsite_fail's detail.
 */
int offsite_list_keys(const struct offsite_remote *o, const char *prefix,
                      int (*fn)(char **key, void *data), void *data);

/*
 * Finds the manifest of backup id in o's bucket: its key into a new *ret.
 * -ENOENT with a detail when the bucket holds no such backup.
 */
int offsite_manifest_find(const struct offsite_remote *o, const char *id, char **ret);

/* This host's name, for manifests. */
const char *offsite_host(void);

extern const struct job_kind offsite_copy_kind;
extern const struct job_kind offsite_restore_kind;
extern const struct job_kind offsite_prune_kind;

/*
 * Whether a prune of remote name runs. A copy to it waits meanwhile (before it reads the
 * bucket), and a prune waits for no copy to run and no other prune of it: a copy never
 * lands on a backup a prune removes.
 */
bool offsite_prune_running(const char *remote);

/* Keeps state_dir for the staging folders of remote prunes and removes stale ones. */
int offsite_prune_init(const char *state_dir);
void offsite_prune_fini(void);

struct job;

/*
 * Downloads the chain of the manifest at key (oldest first) into the folder
 * staging (a descriptor; its path staging_path), each image opened,
 * decompressed and checked as a restore does (offsite_restore.c). *ret: the
 * chain's manifests, a new array of *ret_n (free each).
 */
int offsite_chain_fetch(struct job *job, struct offsite_remote *o, const char *key, int staging,
                        const char *staging_path, struct conf_manifest ***ret, size_t *ret_n);

/*
 * Uploads the image file at path as object key of o, as a copy does
 * (offsite_copy.c: zstd, the remote's key, resumable parts), locked until
 * lock_until_ms when that is in the future. *ret_bytes: the object's size.
 */
int offsite_upload_file(struct job *job, struct offsite_remote *o, const char *path,
                        const char *key, int64_t lock_until_ms, uint64_t *ret_bytes);

/* Whether a copy job to remote name is queued or running (a delete waits for none). */
bool offsite_copy_running(const char *remote);

/*
 * Downloads backup id of remote's bucket and every backup it stands on
 * into the folder staging (a descriptor; staging_path its path), each image
 * checked against its manifest as an offsite restore does, for a local
 * restore whose chain stands on offsite-only backups (core/offsite_adopt.h).
 * job reports the progress. -ENOENT with a detail when the bucket lacks it.
 */
int offsite_download_chain(struct job *job, const char *remote, const char *id, int staging,
                           const char *staging_path);

/* Removes the staging folder name of dirfd (staging: its descriptor, or -1) and its files. */
void offsite_staging_remove(int dirfd, const char *name, int staging);

#endif
