-- jobcontrol schema 1 for PostgreSQL: builds, their log records and their progress.
-- The same tables and columns as SQLite's, with PostgreSQL's types: timestamptz for every
-- time, jsonb for the definition and the dependency builds consumed. result_data stays text:
-- a "json" result is kept byte for byte as jobcontrol serialised it (jsonb would reorder its
-- keys), and the "repr" and "pickle" kinds are not JSON at all.

-- an identity never hands out an id twice, even after the newest build is deleted
CREATE TABLE builds (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id text NOT NULL,
    state text NOT NULL,
    reason text,
    definition jsonb NOT NULL DEFAULT '{}',
    definition_hash text NOT NULL DEFAULT '',
    dependency_builds jsonb NOT NULL DEFAULT '{}',
    created timestamptz NOT NULL,
    started timestamptz,
    finished timestamptz,
    heartbeat timestamptz,
    host text,
    pid integer,
    result_kind text,
    result_data text,
    exc_type text,
    exc_message text,
    exc_traceback text,
    -- no foreign key: a retry keeps pointing at a build that was pruned
    retry_of bigint
);

-- claims (running builds of a job) and status (per job: newest success, skip, running)
CREATE INDEX builds_job_state_id ON builds (job_id, state, id);
-- `builds JOB` (one job's history, newest first) and status (each job's newest build)
CREATE INDEX builds_job_id ON builds (job_id, id);
-- `reap` and `builds --state`: running builds of every job
CREATE INDEX builds_state_id ON builds (state, id);

-- the primary key (build_id, seq) serves `logs BUILD` in order
CREATE TABLE logs (
    build_id bigint NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    time timestamptz NOT NULL,
    level integer NOT NULL,
    logger text NOT NULL,
    message text NOT NULL,
    exception text,
    PRIMARY KEY (build_id, seq)
);

CREATE TABLE progress (
    build_id bigint NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
    -- the group as a JSON array of strings; [] is the whole build
    group_path text NOT NULL,
    current double precision NOT NULL,
    total double precision,
    message text,
    updated timestamptz NOT NULL,
    PRIMARY KEY (build_id, group_path)
);
