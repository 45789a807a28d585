-- PostgreSQL's own SQL (see common.sql): rows a write depends on are locked, claims take
-- the job's advisory lock, news is NOTIFYed, logs are COPYed, and a write whose answer a
-- lost connection cut off is looked for before it is tried again.

-- name: build_state_locked
SELECT state FROM builds WHERE id = ? FOR UPDATE

-- name: build_locked
SELECT id FROM builds WHERE id = ? FOR UPDATE

-- name: log_end_locked
SELECT (SELECT max(seq) FROM logs WHERE build_id = b.id) FROM builds b WHERE b.id = ? FOR UPDATE

-- name: enqueue_in_new_run
-- a queued build and the run it opens, refused while the job is paused (when the second
-- value is true): one statement, its own transaction, so one round trip a submit. Its row:
-- the build's id and run (NULL when refused), then the pause in force (NULL when none).
WITH pause AS (
    SELECT job_id, paused, paused_by, reason, resumed, resumed_by, id FROM job_pauses
    WHERE job_id = ? AND resumed IS NULL AND ?
), run AS (
    INSERT INTO build_runs (trigger, created, created_by, targets, params, note, token)
    SELECT ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT FROM pause)
    RETURNING id
), build AS (
    INSERT INTO builds (job_id, state, definition, definition_hash, dependency_builds, created,
                        retry_of, queue, run_id, params)
    SELECT ?, ?, ?, ?, ?, ?, ?, ?, run.id, ? FROM run
    RETURNING id, run_id
)
SELECT build.id, build.run_id, pause.* FROM (SELECT) AS one
LEFT JOIN build ON true LEFT JOIN pause ON true

-- name: pause_in_force
SELECT job_id, paused, paused_by, reason, resumed, resumed_by, id FROM job_pauses
WHERE job_id = ? AND resumed IS NULL FOR UPDATE

-- name: advisory_lock
-- claims of a job (or migrations of a schema: the first key says which), serialised
-- until the transaction ends
SELECT pg_advisory_xact_lock(?, hashtext(?))

-- name: schema_exists
SELECT 1 FROM pg_namespace WHERE nspname = ?

-- name: table_exists
SELECT to_regclass(?) IS NOT NULL

-- name: notify_build
-- delivered at COMMIT, and once however often sent in a transaction
SELECT pg_notify(?, '')

-- name: copy_logs
COPY logs (build_id, seq, time, level, logger, message, exception) FROM STDIN

-- name: claim_landed
SELECT {build_columns} FROM builds WHERE claim_token = ?

-- name: enqueue_landed
SELECT {build_columns} FROM builds
WHERE job_id = ? AND created = ? AND queue = ? AND retry_of IS NOT DISTINCT FROM ?

-- name: start_landed
SELECT state, host, pid, started FROM builds WHERE id = ?

-- name: build_state
SELECT state FROM builds WHERE id = ?

-- name: last_log
SELECT time, message FROM logs WHERE build_id = ? ORDER BY seq DESC LIMIT 1

-- name: log_at
SELECT time, message FROM logs WHERE build_id = ? AND seq = ?

-- name: consumers
-- as common.sql's, read with jsonb's ->> (dependency_builds is jsonb here)
SELECT {build_columns} FROM (
    SELECT * FROM builds WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?
) AS later
WHERE (dependency_builds ->> ?)::bigint = ?
ORDER BY id LIMIT ?

-- name: running_settled
-- FOR SHARE waits for every running build's row that a transaction is changing (an end
-- left to commit with its runner's next write) to commit, and reads the row as it then is
SELECT id FROM builds WHERE job_id = (SELECT job_id FROM builds WHERE id = ?) AND state = ?
FOR SHARE
