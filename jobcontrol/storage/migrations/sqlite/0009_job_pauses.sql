-- jobcontrol schema 9: pauses of jobs (`jobcontrol pause` / `resume`), kept after they end
-- so the record says who paused a job, when and why, and who resumed it. A row whose
-- `resumed` is NULL is the job's pause in force: at most one a job (the partial unique
-- index), so two people pausing at once make one pause.
CREATE TABLE job_pauses (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    paused TEXT NOT NULL,
    paused_by TEXT NOT NULL,
    reason TEXT,
    resumed TEXT,
    resumed_by TEXT
);
CREATE UNIQUE INDEX job_pauses_in_force ON job_pauses (job_id) WHERE resumed IS NULL;
CREATE INDEX job_pauses_job ON job_pauses (job_id, id);
