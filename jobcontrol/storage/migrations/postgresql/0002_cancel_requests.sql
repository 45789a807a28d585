-- jobcontrol schema 2: a running build can be asked to stop, from any process or host.
-- The runner polls its builds' requests and stops the job; the request stays as a record.
ALTER TABLE builds ADD COLUMN cancel_requested timestamptz;
ALTER TABLE builds ADD COLUMN cancel_reason text;
