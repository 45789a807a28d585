-- The SQL of the SQL backends, one text per operation, found by name (see load_queries).
-- Written once, with ? placeholders, in SQL both dialects accept; a dialect's file
-- (sqlite.sql, postgresql.sql) holds only what it does differently, under the same name.
-- {build_columns} stands for the columns of builds, in the order rows are decoded.

-- name: fetch_build
SELECT {build_columns} FROM builds WHERE id = ?

-- name: build_state_locked
-- a build's state, its row locked where the dialect can (its runner's writes are fenced
-- on it until the transaction ends)
SELECT state FROM builds WHERE id = ?

-- name: build_locked
SELECT id FROM builds WHERE id = ?

-- name: claim_build
-- the row goes in only while fewer than the job's concurrency of its builds run
INSERT INTO builds (job_id, state, definition, definition_hash, dependency_builds, created,
                    started, heartbeat, host, pid, retry_of, claim_token, run_id, params,
                    pid_namespace, pgid)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
WHERE (SELECT count(*) FROM builds WHERE job_id = ? AND state = ?) < ?

-- name: running_builds
SELECT id FROM builds WHERE job_id = ? AND state = ? ORDER BY id

-- name: retry_of
SELECT id FROM builds WHERE retry_of = ?

-- name: enqueue_build
INSERT INTO builds (job_id, state, definition, definition_hash, dependency_builds, created,
                    retry_of, queue, run_id, params)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: start_queued_build
-- the row changes only while it is queued, of the job and definition named (a NULL hash:
-- any) and fewer than the job's concurrency of its builds run; it comes back started,
-- with where its log ends (its runner numbers the records it writes from there)
UPDATE builds SET state = ?, started = ?, heartbeat = ?, host = ?, pid = ?,
                  dependency_builds = coalesce(?, dependency_builds), worker_id = ?,
                  pid_namespace = ?, pgid = ?
WHERE id = ? AND state = ? AND job_id = ? AND definition_hash = coalesce(?, definition_hash)
  AND (SELECT count(*) FROM builds WHERE job_id = ? AND state = ?) < ?
RETURNING {build_columns}, (SELECT max(seq) FROM logs WHERE build_id = builds.id)

-- name: start_queued_build_no_returning
UPDATE builds SET state = ?, started = ?, heartbeat = ?, host = ?, pid = ?,
                  dependency_builds = coalesce(?, dependency_builds), worker_id = ?,
                  pid_namespace = ?, pgid = ?
WHERE id = ? AND state = ? AND job_id = ? AND definition_hash = coalesce(?, definition_hash)
  AND (SELECT count(*) FROM builds WHERE job_id = ? AND state = ?) < ?

-- name: started_build
SELECT {build_columns}, (SELECT max(seq) FROM logs WHERE build_id = builds.id)
FROM builds WHERE id = ?

-- name: get_retry
SELECT {build_columns} FROM builds WHERE retry_of = ?

-- name: consumers
-- the builds of one dependent job after a build that consumed it: the first rows of a range
-- of the (job_id, id) index, the JSON column read only on those (no index serves a key of it)
SELECT {build_columns} FROM (
    SELECT * FROM builds WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?
) AS later
WHERE json_extract(dependency_builds, '$."' || ? || '"') = ?
ORDER BY id LIMIT ?

-- name: finish_claimed
-- the finish of a build this object claimed: only what others may have changed since
-- comes back; a late writer never overwrites a recorded outcome
UPDATE builds SET state = ?, reason = ?, finished = ?, result_kind = ?, result_data = ?,
                  exc_type = ?, exc_message = ?, exc_traceback = ?
WHERE id = ? AND state IN (?, ?)
RETURNING heartbeat, cancel_requested, cancel_reason

-- name: finish_build
UPDATE builds SET state = ?, reason = ?, finished = ?, result_kind = ?, result_data = ?,
                  exc_type = ?, exc_message = ?, exc_traceback = ?
WHERE id = ? AND state IN (?, ?)
RETURNING {build_columns}

-- name: finish_build_no_returning
-- for SQLite before 3.35 (no UPDATE ... RETURNING): the row is read afterwards
UPDATE builds SET state = ?, reason = ?, finished = ?, result_kind = ?, result_data = ?,
                  exc_type = ?, exc_message = ?, exc_traceback = ?
WHERE id = ? AND state IN (?, ?)

-- name: set_process_group
UPDATE builds SET pgid = ? WHERE id = ? AND state = ?

-- name: cancel_queued
UPDATE builds SET state = ?, reason = ?, finished = ? WHERE id = ? AND state = ?

-- name: mark_resent
UPDATE builds SET heartbeat = ?, reason = ? WHERE id = ? AND state = ?

-- name: mark_resent_first
UPDATE builds SET heartbeat = ?, reason = ? WHERE id = ? AND state = ? AND heartbeat IS NULL

-- name: note_queued
UPDATE builds SET reason = ? WHERE id = ? AND state = ?

-- name: running_settled
-- the running builds of a build's job, read once the ends under way have committed (the
-- dialects that lock rows wait for them: see postgresql.sql)
SELECT id FROM builds WHERE job_id = (SELECT job_id FROM builds WHERE id = ?) AND state = ?

-- name: slot_waiters
-- the job's queued builds that wait for a slot, oldest first; the text is SLOT_WAIT's.
-- PostgreSQL reads its partial index builds_slot_waiters (schema 14); SQLite walks the
-- job's queued builds (builds_job_state_id): any index more on builds (a partial one too)
-- cost SQLite 45 µs on every claim's INSERT, 15% of an inline build
SELECT {build_columns} FROM builds
WHERE job_id = ? AND state = 'queued' AND reason LIKE 'waited for a free slot%'
ORDER BY id LIMIT ?

-- name: cancel_running
UPDATE builds SET cancel_requested = ?, cancel_reason = ?
WHERE id = ? AND state = ? AND cancel_requested IS NULL

-- name: record_build
INSERT INTO builds (job_id, state, reason, definition, definition_hash, created, started,
                    finished, host, pid, run_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: build_counts
-- grouped by the columns of the (job_id, state, id) index: counted from the index alone
SELECT job_id, state, count(*) FROM builds GROUP BY job_id, state

-- name: delete_build
-- logs and progress go with it: ON DELETE CASCADE
DELETE FROM builds WHERE id = ?

-- name: log_end_locked
-- whether the build exists (its row locked where the dialect can), and where its log ends
SELECT (SELECT max(seq) FROM logs WHERE build_id = b.id) FROM builds b WHERE b.id = ?

-- name: insert_logs
INSERT INTO logs (build_id, seq, time, level, logger, message, exception)
VALUES (?, ?, ?, ?, ?, ?, ?)

-- name: set_progress
INSERT INTO progress (build_id, group_path, current, total, message, updated)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (build_id, group_path) DO UPDATE SET current = excluded.current,
    total = excluded.total, message = excluded.message, updated = excluded.updated

-- name: get_progress
SELECT group_path, current, total, message, updated FROM progress WHERE build_id = ?

-- name: claim_scheduled_run
-- the primary key decides: one INSERT wins, the others insert nothing
INSERT INTO schedule_runs (job_id, scheduled_for, claimed, host, pid, outcome)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (job_id, scheduled_for) DO NOTHING

-- name: set_scheduled_run
UPDATE schedule_runs SET outcome = ?, build_id = ? WHERE job_id = ? AND scheduled_for = ?

-- name: last_scheduled_runs
SELECT job_id, scheduled_for, claimed, host, pid, outcome, build_id FROM schedule_runs s
WHERE scheduled_for = (SELECT max(scheduled_for) FROM schedule_runs WHERE job_id = s.job_id)

-- name: scheduled_runs
SELECT job_id, scheduled_for, claimed, host, pid, outcome, build_id FROM schedule_runs
WHERE job_id = ? ORDER BY scheduled_for DESC

-- name: pause_job
-- the partial unique index decides: a job already paused keeps the pause in force
INSERT INTO job_pauses (job_id, paused, paused_by, reason) VALUES (?, ?, ?, ?)
ON CONFLICT (job_id) WHERE resumed IS NULL DO NOTHING

-- name: pause_in_force
SELECT job_id, paused, paused_by, reason, resumed, resumed_by, id FROM job_pauses
WHERE job_id = ? AND resumed IS NULL

-- name: resume_job
UPDATE job_pauses SET resumed = ?, resumed_by = ? WHERE id = ? AND resumed IS NULL

-- name: pauses_in_force
-- every pause in force: a few rows, read by the partial index
SELECT job_id, paused, paused_by, reason, resumed, resumed_by, id FROM job_pauses
WHERE resumed IS NULL

-- name: pause_history
SELECT job_id, paused, paused_by, reason, resumed, resumed_by, id FROM job_pauses
WHERE job_id = ? ORDER BY id DESC

-- name: create_run
INSERT INTO build_runs (trigger, created, created_by, targets, params, note, token)
VALUES (?, ?, ?, ?, ?, ?, ?)

-- name: run_by_token
SELECT id, trigger, created, created_by, targets, params, note FROM build_runs WHERE token = ?

-- name: get_run
SELECT id, trigger, created, created_by, targets, params, note FROM build_runs WHERE id = ?

-- name: list_runs
SELECT id, trigger, created, created_by, targets, params, note FROM build_runs
WHERE (? IS NULL OR id < ?)
  AND (? IS NULL OR EXISTS (SELECT 1 FROM builds b
                            WHERE b.run_id = build_runs.id AND b.job_id = ?))
ORDER BY id DESC

-- name: get_setting
SELECT value FROM settings WHERE key = ?

-- name: add_setting
INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING

-- name: replace_setting
INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- name: forget_web_sessions
DELETE FROM web_sessions WHERE expires <= ?

-- name: start_web_session
INSERT INTO web_sessions (id, user_name, expires) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING

-- name: web_session_user
SELECT user_name FROM web_sessions WHERE id = ? AND expires > ?

-- name: end_web_session
DELETE FROM web_sessions WHERE id = ?

-- name: forget_login_failures
DELETE FROM login_failures WHERE at < ?

-- name: record_login_failure
INSERT INTO login_failures (key, at) VALUES (?, ?)

-- name: login_failures
SELECT at FROM login_failures WHERE key = ? AND at >= ? ORDER BY at

-- name: schema_version
SELECT max(version) FROM jobcontrol_schema

-- name: record_migration
INSERT INTO jobcontrol_schema (version, name, applied) VALUES (?, ?, ?)

-- name: probe_write
-- a key no one uses: a real insert, whatever the table holds (rolled back)
INSERT INTO settings (key, value) VALUES (?, ?)

-- name: beat_worker
INSERT INTO build_workers (id, host, pid, started, heartbeat, queues) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET heartbeat = excluded.heartbeat

-- name: list_workers
SELECT id, host, pid, started, heartbeat, queues FROM build_workers ORDER BY started, id

-- name: forget_worker
DELETE FROM build_workers WHERE id = ?
