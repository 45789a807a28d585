-- jobcontrol schema 10: runs (every invocation that starts builds: `build`, a scheduled
-- instant, a web launch, `build --async`, a backfill) and the parameters of builds.
-- A build points at its run (run_id; NULL for builds made before runs existed). `params`
-- holds a build's parameters that differ from the job's defaults (JSON, NULL when it has
-- none): such a build is never a job's last success (see jobcontrol/rules/params.py).
-- build_runs, not runs: the database may hold the jobs' own tables too, and "runs" is a
-- name a job may well have taken.
CREATE TABLE build_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger TEXT NOT NULL,
    created TEXT NOT NULL,
    created_by TEXT NOT NULL,
    -- JSON: the jobs asked for, and every parameter given ({job: {name: value}})
    targets TEXT NOT NULL DEFAULT '[]',
    params TEXT NOT NULL DEFAULT '{}',
    -- what else says what the run is for (a scheduled instant, a backfill's window)
    note TEXT,
    -- random, the same in every attempt of one creation: an attempt whose COMMIT a lost
    -- connection cut off is found by it, and the index lets it make one row only
    token TEXT UNIQUE
);
ALTER TABLE builds ADD COLUMN run_id INTEGER;
ALTER TABLE builds ADD COLUMN params TEXT;
CREATE INDEX builds_run_id ON builds (run_id, id);
