-- jobcontrol schema 1: builds, their log records and their progress.
-- Times are ISO 8601 UTC text with microseconds ("2024-05-01T12:00:00.000000+00:00"), so text
-- order is time order. JSON columns hold JSON text.

-- AUTOINCREMENT: ids are never reused, even after the newest build is deleted
CREATE TABLE builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    definition TEXT NOT NULL DEFAULT '{}',
    definition_hash TEXT NOT NULL DEFAULT '',
    dependency_builds TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    heartbeat TEXT,
    host TEXT,
    pid INTEGER,
    result_kind TEXT,
    result_data TEXT,
    exc_type TEXT,
    exc_message TEXT,
    exc_traceback TEXT,
    -- no foreign key: a retry keeps pointing at a build that was pruned
    retry_of INTEGER
);

-- claims (running builds of a job) and status (one pass for all jobs: a covering index)
CREATE INDEX builds_job_state_id ON builds (job_id, state, id);
-- `builds JOB`: one job's history, newest first
CREATE INDEX builds_job_id ON builds (job_id, id);
-- `reap` and `builds --state`: running builds of every job
CREATE INDEX builds_state_id ON builds (state, id);

CREATE TABLE logs (
    build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    time TEXT NOT NULL,
    level INTEGER NOT NULL,
    logger TEXT NOT NULL,
    message TEXT NOT NULL,
    exception TEXT,
    PRIMARY KEY (build_id, seq)
);

CREATE TABLE progress (
    build_id INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    -- the group as a JSON array of strings; [] is the whole build
    group_path TEXT NOT NULL,
    current REAL NOT NULL,
    total REAL,
    message TEXT,
    updated TEXT NOT NULL,
    PRIMARY KEY (build_id, group_path)
);
