-- jobcontrol schema 9: pauses of jobs (`jobcontrol pause` / `resume`), kept after they end
-- so the record says who paused a job, when and why, and who resumed it. A row whose
-- `resumed` is NULL is the job's pause in force: at most one a job (the partial unique
-- index), so two people pausing at once make one pause.
CREATE TABLE job_pauses (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id text NOT NULL,
    paused timestamptz NOT NULL,
    paused_by text NOT NULL,
    reason text,
    resumed timestamptz,
    resumed_by text
);
CREATE UNIQUE INDEX job_pauses_in_force ON job_pauses (job_id) WHERE resumed IS NULL;
CREATE INDEX job_pauses_job ON job_pauses (job_id, id);
