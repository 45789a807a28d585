-- jobcontrol schema 12: how many builds each job has, for the Builds page's total
-- (count(*) of a million builds takes 130 ms; the sum of a row a job does not).
-- Kept by triggers, so every insert and delete of builds (claim, enqueue, record, delete,
-- prune) updates it in its own transaction, whichever code path it takes. One row a job:
-- claims of different jobs never wait on one another's row (claims of one job already
-- serialise on the job's advisory lock). A job's row stays at 0 once its builds are gone.
CREATE TABLE build_counts (
    job_id text PRIMARY KEY,
    builds bigint NOT NULL DEFAULT 0
);
INSERT INTO build_counts (job_id, builds) SELECT job_id, count(*) FROM builds GROUP BY job_id;

-- SET search_path FROM CURRENT: the functions find build_counts in the schema jobcontrol
-- uses (?schema=), whoever deletes builds and whatever their own search_path.

-- Once a statement, not a row: a statement inserting or deleting many builds (a prune, a
-- bulk load) updates a job's row once, not once a build (a million updates of one row
-- would leave a million dead versions of it to read past). Rows in job order, so that two
-- statements touching several jobs cannot deadlock.
CREATE FUNCTION build_counts_insert() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO build_counts (job_id, builds)
        SELECT job_id, count(*) FROM made GROUP BY job_id ORDER BY job_id
        ON CONFLICT (job_id) DO UPDATE SET builds = build_counts.builds + excluded.builds;
    RETURN NULL;
END $$;

CREATE FUNCTION build_counts_delete() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM 1 FROM build_counts WHERE job_id IN (SELECT job_id FROM gone)
        ORDER BY job_id FOR UPDATE;
    UPDATE build_counts c SET builds = c.builds - g.n
        FROM (SELECT job_id, count(*) AS n FROM gone GROUP BY job_id) g
        WHERE c.job_id = g.job_id;
    RETURN NULL;
END $$;

-- a build never changes job; if one ever did, its count moves with it
CREATE FUNCTION build_counts_move() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.job_id IS DISTINCT FROM OLD.job_id THEN
        UPDATE build_counts SET builds = builds - 1 WHERE job_id = OLD.job_id;
        INSERT INTO build_counts (job_id, builds) VALUES (NEW.job_id, 1)
            ON CONFLICT (job_id) DO UPDATE SET builds = build_counts.builds + 1;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER build_counts_insert AFTER INSERT ON builds
    REFERENCING NEW TABLE AS made FOR EACH STATEMENT EXECUTE FUNCTION build_counts_insert();
CREATE TRIGGER build_counts_delete AFTER DELETE ON builds
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION build_counts_delete();
CREATE TRIGGER build_counts_move AFTER UPDATE OF job_id ON builds
    FOR EACH ROW EXECUTE FUNCTION build_counts_move();
