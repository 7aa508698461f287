/*
 * The schema, as forward-only migrations. Migration N takes a database at
 * user_version N-1 to N; each runs in one transaction with the version bump.
 * Never edit a migration that has shipped: add the next one.
 */
#include "db_priv.h"
#include "migrations.h"

const char *const db_migrations[] = {
    /* 1: the service's own facts. */
    "CREATE TABLE service ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ") STRICT;",
    /* 2: the generic jobs (core/jobs.h): one row per job, updated at every state change. */
    "CREATE TABLE jobs ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL,"
    "  domain TEXT,"
    "  domain_uuid TEXT,"
    "  state TEXT NOT NULL"
    "    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),"
    "  bytes_done INTEGER NOT NULL DEFAULT 0,"
    "  bytes_total INTEGER NOT NULL DEFAULT 0,"
    "  error_errno INTEGER,"
    "  error_detail TEXT,"
    "  result TEXT,"
    "  params TEXT,"
    "  created_ms INTEGER NOT NULL,"
    "  started_ms INTEGER,"
    "  finished_ms INTEGER"
    ") STRICT;"
    "CREATE INDEX jobs_by_domain ON jobs (domain_uuid, seq);"
    "CREATE INDEX jobs_by_state ON jobs (state, seq);",
    /* 3: checkpoints, with the full XML that redefining them needs. */
    "CREATE TABLE checkpoints ("
    "  id INTEGER PRIMARY KEY,"
    "  domain_uuid TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  parent TEXT,"
    "  xml TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('ok', 'redefined', 'broken', 'orphaned')),"
    "  reason TEXT,"
    "  created INTEGER NOT NULL,"
    "  stored INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  UNIQUE (domain_uuid, name)"
    ") STRICT;",
    /* 4: backups, the catalog: one row per backup and one per stored disk. */
    "CREATE TABLE backups ("
    "  id TEXT PRIMARY KEY,"
    "  domain_uuid TEXT NOT NULL,"
    "  domain_name TEXT NOT NULL,"
    "  mode TEXT NOT NULL CHECK (mode IN ('push', 'pull')),"
    "  type TEXT NOT NULL CHECK (type IN ('full', 'incremental', 'differential')),"
    "  state TEXT NOT NULL"
    "    CHECK (state IN ('running', 'ready', 'completed', 'failed', 'cancelled')),"
    "  job_id TEXT,"
    "  chain_id TEXT NOT NULL,"
    "  parent_id TEXT,"
    "  base_checkpoint TEXT,"
    "  checkpoint TEXT,"
    "  domain_xml TEXT NOT NULL,"
    "  stored_bytes INTEGER NOT NULL DEFAULT 0,"
    "  started_at INTEGER NOT NULL,"
    "  finished_at INTEGER,"
    "  error_errno INTEGER,"
    "  error_detail TEXT,"
    "  verified_at INTEGER,"
    "  verify_ok INTEGER,"
    "  verify_detail TEXT"
    ") STRICT;"
    "CREATE INDEX backups_by_domain ON backups (domain_uuid, started_at);"
    "CREATE INDEX backups_by_parent ON backups (parent_id);"
    "CREATE TABLE backup_disks ("
    "  backup_id TEXT NOT NULL REFERENCES backups (id) ON DELETE CASCADE,"
    "  target TEXT NOT NULL,"
    "  file TEXT NOT NULL,"
    "  backing TEXT,"
    "  size INTEGER NOT NULL,"
    "  stored_bytes INTEGER NOT NULL DEFAULT 0,"
    "  sha256 TEXT,"
    "  PRIMARY KEY (backup_id, target)"
    ") STRICT;",
    /* 5: the audit log, one row per state-changing request. */
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time_ms INTEGER NOT NULL,"
    "  who TEXT,"
    "  remote TEXT,"
    "  method TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  job_id TEXT,"
    "  domain TEXT"
    ") STRICT;"
    "CREATE INDEX audit_by_time ON audit (time_ms);"
    "CREATE INDEX audit_by_domain ON audit (domain, seq);",
    /*
     * 6: the answers to POSTs that came with an Idempotency-Key, per caller
     * (scope) and key, kept until expires_ms; 'pending' while the first
     * request is being answered.
     */
    "CREATE TABLE idempotency ("
    "  scope TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  fingerprint TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'done')),"
    "  status INTEGER,"
    "  content_type TEXT,"
    "  location TEXT,"
    "  body BLOB,"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (scope, key)"
    ") STRICT;"
    "CREATE INDEX idempotency_by_expiry ON idempotency (expires_ms);",
    /*
     * 7: webhooks, and their deliveries: every event a webhook is told of is
     * a row before the first attempt, so that a restart loses none.
     */
    "CREATE TABLE webhooks ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  url TEXT NOT NULL,"
    "  events TEXT NOT NULL,"
    "  secret TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE webhook_deliveries ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT NOT NULL UNIQUE,"
    "  webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,"
    "  event TEXT NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_ms INTEGER NOT NULL,"
    "  last_status INTEGER,"
    "  last_error TEXT,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL"
    ") STRICT;"
    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_ms);"
    "CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, seq);",
    /*
     * 8: prune. A protected backup is never pruned nor deleted. A prune
     * records its intent before it touches a file: the images it writes
     * (path, a .part beside target) and the images it removes; 'prepared'
     * until the catalog switched to the new images in the same transaction
     * that makes it 'committed'. Start-up rolls a prepared intent back (its
     * .part files go) and a committed one forward (renames, removals).
     */
    "ALTER TABLE backups ADD COLUMN protected INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE prune_intents ("
    "  id TEXT PRIMARY KEY,"
    "  domain_uuid TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('prepared', 'committed')),"
    "  created_ms INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE prune_intent_files ("
    "  intent_id TEXT NOT NULL REFERENCES prune_intents (id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  op TEXT NOT NULL CHECK (op IN ('write', 'remove')),"
    "  path TEXT NOT NULL,"
    "  target TEXT,"
    "  PRIMARY KEY (intent_id, seq)"
    ") STRICT;",
    /*
     * 9: protection policies (conf/policy.h) and, per policy and domain, how
     * its runs went, so that a restart knows what it missed; the policy that
     * started a job.
     */
    "CREATE TABLE policies ("
    "  name TEXT PRIMARY KEY,"
    "  domains TEXT NOT NULL,"
    "  schedule TEXT,"
    "  interval_s INTEGER,"
    "  backup_type TEXT NOT NULL,"
    "  backup_mode TEXT NOT NULL,"
    "  backup_to_vault INTEGER NOT NULL DEFAULT 0,"
    "  backup_bandwidth INTEGER NOT NULL DEFAULT 0,"
    "  backup_disks TEXT,"
    "  retention TEXT NOT NULL,"
    "  verify_after_s INTEGER,"
    "  enabled INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  CHECK ((schedule IS NULL) <> (interval_s IS NULL))"
    ") STRICT;"
    "CREATE TABLE policy_members ("
    "  policy TEXT NOT NULL REFERENCES policies (name) ON DELETE CASCADE,"
    "  domain_uuid TEXT NOT NULL,"
    "  domain TEXT NOT NULL,"
    "  since_ms INTEGER NOT NULL,"
    "  last_run_ms INTEGER,"
    "  last_result TEXT,"
    "  last_job TEXT,"
    "  last_detail TEXT,"
    "  last_catch_up INTEGER NOT NULL DEFAULT 0,"
    "  last_success_ms INTEGER,"
    "  PRIMARY KEY (policy, domain_uuid)"
    ") STRICT;"
    "ALTER TABLE jobs ADD COLUMN policy TEXT;",
    /*
     * 10: instant recoveries (conf/recovery.h), and the backups each one
     * stands on: a backup with a row here under a recovery that is moving or
     * stopped cannot be deleted. And the mounts of backup points.
     */
    "CREATE TABLE recoveries ("
    "  id TEXT PRIMARY KEY,"
    "  backup_id TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  domain_uuid TEXT,"
    "  target_dir TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('moving', 'stopped', 'done', 'failed')),"
    "  created_ms INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE recovery_locks ("
    "  recovery_id TEXT NOT NULL REFERENCES recoveries (id) ON DELETE CASCADE,"
    "  backup_id TEXT NOT NULL,"
    "  PRIMARY KEY (recovery_id, backup_id)"
    ") STRICT;"
    "CREATE INDEX recovery_locks_by_backup ON recovery_locks (backup_id);"
    /* Read-only mounts of backup points: their qemu-nbd processes, for a restart to end. */
    "CREATE TABLE mounts ("
    "  id TEXT PRIMARY KEY,"
    "  backup_id TEXT NOT NULL,"
    "  exports TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL"
    ") STRICT;",
    /*
     * 11: remotes (S3-compatible buckets; their secrets live in 0600 files,
     * not here), the copies of backups to them, and the multipart uploads in
     * flight with each part the bucket confirmed, for a copy to resume.
     */
    "CREATE TABLE remotes ("
    "  name TEXT PRIMARY KEY,"
    "  endpoint TEXT NOT NULL,"
    "  region TEXT NOT NULL,"
    "  bucket TEXT NOT NULL,"
    "  prefix TEXT NOT NULL,"
    "  path_style INTEGER NOT NULL,"
    "  access_key TEXT NOT NULL,"
    "  ca_file TEXT,"
    "  key_file TEXT,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  lock_days INTEGER NOT NULL DEFAULT 0"
    ") STRICT;"
    "CREATE TABLE remote_copies ("
    "  backup_id TEXT NOT NULL,"
    "  remote TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('uploading', 'completed', 'failed')),"
    "  job_id TEXT,"
    "  object_bytes INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT,"
    "  created_ms INTEGER NOT NULL,"
    "  finished_ms INTEGER,"
    "  PRIMARY KEY (backup_id, remote)"
    ") STRICT;"
    "CREATE TABLE remote_uploads ("
    "  remote TEXT NOT NULL,"
    "  object TEXT NOT NULL,"
    "  upload_id TEXT NOT NULL UNIQUE,"
    "  PRIMARY KEY (remote, object)"
    ") STRICT;"
    "CREATE TABLE remote_parts ("
    "  upload_id TEXT NOT NULL,"
    "  number INTEGER NOT NULL,"
    "  raw_off INTEGER NOT NULL,"
    "  raw_end INTEGER NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  etag TEXT NOT NULL,"
    "  PRIMARY KEY (upload_id, number)"
    ") STRICT;",
    /*
     * 12: how each disk's checksum was computed (util/hash.h): rows before
     * it hold the SHA-256 of the whole file; newer ones "sha256-pieces-8MiB",
     * whose piece digests (32 bytes each, file order) let verify name the
     * piece that differs.
     */
    ("ALTER TABLE backup_disks ADD COLUMN checksum_algorithm TEXT NOT NULL DEFAULT 'sha256';"
     "ALTER TABLE backup_disks ADD COLUMN piece_digests BLOB;"),
    /*
     * 13: a domain's page of backups, newest first by (started_at, id), and
     * its count, from the index alone, however large the catalog grows.
     * It has backups_by_domain's columns as its prefix, so that one goes.
     * The vault's bytes per domain (the metrics) from a covering index, not
     * a read of every row with its domain XML.
     */
    "CREATE INDEX backups_by_domain_page"
    "  ON backups (domain_uuid, started_at, id);"
    "DROP INDEX backups_by_domain;"
    "CREATE INDEX backups_completed_bytes"
    "  ON backups (state, domain_uuid, stored_bytes, domain_name);",
    /*
     * 14: a policy's offsite copy: the remote each of its backups is copied
     * to (NULL: none) and what that remote keeps of each domain (the
     * retention's text form; NULL keeps all).
     */
    ("ALTER TABLE policies ADD COLUMN copy_to TEXT;"
     "ALTER TABLE policies ADD COLUMN remote_retention TEXT;"),
    /*
     * 15: where a backup's images are: NULL in this host's vault, else the
     * name of the remote whose bucket alone holds them (a chain adopted from
     * a bucket's manifests, core/offsite_adopt.c).
     */
    "ALTER TABLE backups ADD COLUMN location TEXT;",
    /*
     * 16: a policy's copy to its remote (copy_to) as it stands: the backup
     * of a run still to be copied and the copy job to follow, so that a
     * restart copies it at once rather than with the next run.
     */
    ("ALTER TABLE policy_members ADD COLUMN copy_pending TEXT;"
     "ALTER TABLE policy_members ADD COLUMN copy_job TEXT;"),
};

const int db_migrations_count = (int)(sizeof(db_migrations) / sizeof(db_migrations[0]));
