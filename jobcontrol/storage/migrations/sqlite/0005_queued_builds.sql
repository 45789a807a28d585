-- jobcontrol schema 5: builds queued for remote workers.
-- queue: the Celery queue a remote build was sent to (NULL for a build run where it was made).
-- A build is retried at most once: workers that notice the same failure together make one
-- retry between them (the index is also how the retry of a build is found).
ALTER TABLE builds ADD COLUMN queue TEXT;
CREATE UNIQUE INDEX builds_retry_of ON builds (retry_of) WHERE retry_of IS NOT NULL;
