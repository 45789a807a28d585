-- jobcontrol schema 10: runs (every invocation that starts builds: `build`, a scheduled
-- instant, a web launch, `build --async`, a backfill) and the parameters of builds.
-- A build points at its run (run_id; NULL for builds made before runs existed). `params`
-- holds a build's parameters that differ from the job's defaults (JSON, NULL when it has
-- none): such a build is never a job's last success (see jobcontrol/rules/params.py).
-- build_runs, not runs: the database may hold the jobs' own tables too, and "runs" is a
-- name a job may well have taken.
CREATE TABLE build_runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trigger text NOT NULL,
    created timestamptz NOT NULL,
    created_by text NOT NULL,
    targets jsonb NOT NULL DEFAULT '[]',
    params jsonb NOT NULL DEFAULT '{}',
    note text,
    -- random, the same in every attempt of one creation: an attempt whose COMMIT a lost
    -- connection cut off is found by it, and the index lets it make one row only
    token text UNIQUE
);
ALTER TABLE builds ADD COLUMN run_id bigint;
ALTER TABLE builds ADD COLUMN params jsonb;
CREATE INDEX builds_run_id ON builds (run_id, id);
