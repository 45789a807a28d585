-- jobcontrol schema 11: workers known by identity. A Celery worker (`jobcontrol worker`)
-- is a row of build_workers, its id unique across machines and containers (its Celery node
-- name, the boot id and the PID namespace), beating its own heartbeat; a build it runs
-- records that id (builds.worker_id). A worker whose heartbeat is too old has its running
-- builds abandoned together; two workers with the same hostname in separate PID namespaces
-- never judge each other's builds by pid.
CREATE TABLE build_workers (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    started timestamptz NOT NULL,
    heartbeat timestamptz NOT NULL,
    queues text NOT NULL DEFAULT ''
);
ALTER TABLE builds ADD COLUMN worker_id text;
