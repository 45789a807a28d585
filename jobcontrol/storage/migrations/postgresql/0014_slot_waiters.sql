-- jobcontrol schema 14: an index of the queued builds waiting for a free slot of their job
-- (the slot_waiters query, read at the end of every build a worker runs). Without it the
-- read walked every queued build of the job, to find none most of the time: 0.35 ms of
-- the server's time a build behind a backlog of 1,000. Partial, so a build that never
-- waits for a slot (nearly all) is never in it.
CREATE INDEX builds_slot_waiters ON builds (job_id, id)
WHERE state = 'queued' AND reason LIKE 'waited for a free slot%';
