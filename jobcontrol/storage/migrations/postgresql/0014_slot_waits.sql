-- jobcontrol schema 14: the queued builds waiting for a free slot of their job (their reason
-- begins "waited for a free slot", see Storage.wait_for_slot), found by job, oldest first,
-- at every end of a build of the job: a partial index holds them alone, so the read costs
-- the same however many other builds of the job are queued.
CREATE INDEX builds_slot_waits ON builds (job_id, id)
    WHERE state = 'queued' AND reason LIKE 'waited for a free slot%';
