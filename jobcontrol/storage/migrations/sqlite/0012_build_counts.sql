-- jobcontrol schema 12: how many builds each job has, for the Builds page's total
-- (count(*) of a million builds reads them all; the sum of a row a job does not).
-- Kept by triggers, so every insert and delete of builds (claim, enqueue, record, delete,
-- prune) updates it in its own transaction, whichever code path it takes. A job's row stays
-- at 0 once its builds are gone: the sum is the same and no row is made and unmade.
CREATE TABLE build_counts (
    job_id TEXT PRIMARY KEY,
    builds INTEGER NOT NULL DEFAULT 0
);
INSERT INTO build_counts (job_id, builds) SELECT job_id, count(*) FROM builds GROUP BY job_id;
CREATE TRIGGER build_counts_insert AFTER INSERT ON builds
BEGIN
    INSERT INTO build_counts (job_id, builds) VALUES (NEW.job_id, 1)
        ON CONFLICT (job_id) DO UPDATE SET builds = builds + 1;
END;
CREATE TRIGGER build_counts_delete AFTER DELETE ON builds
BEGIN
    UPDATE build_counts SET builds = builds - 1 WHERE job_id = OLD.job_id;
END;
-- a build never changes job; if one ever did, its count moves with it
CREATE TRIGGER build_counts_move AFTER UPDATE OF job_id ON builds
    WHEN NEW.job_id IS NOT OLD.job_id
BEGIN
    UPDATE build_counts SET builds = builds - 1 WHERE job_id = OLD.job_id;
    INSERT INTO build_counts (job_id, builds) VALUES (NEW.job_id, 1)
        ON CONFLICT (job_id) DO UPDATE SET builds = builds + 1;
END;
