-- jobcontrol schema 4: one row per scheduled instant of a job that `run-due` or `scheduler`
-- took on. The primary key is the claim: of two processes racing for an instant, one
-- inserts the row and runs it, the other finds it there and leaves it.
CREATE TABLE schedule_runs (
    job_id text NOT NULL,
    scheduled_for timestamptz NOT NULL,
    claimed timestamptz NOT NULL,
    host text,
    pid integer,
    -- claimed (being started), started, overlap (skipped: the job was running), missed
    outcome text NOT NULL,
    -- no foreign key: the record outlives a pruned build
    build_id bigint,
    PRIMARY KEY (job_id, scheduled_for)
);
