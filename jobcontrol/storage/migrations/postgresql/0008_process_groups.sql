-- jobcontrol schema 8: the process group of a running build's job process, on the build's
-- host (NULL for an inline build, or before its process started). When the build's runner
-- dies or hangs, the command that marks the build abandoned there kills this group, so the
-- job's subprocesses end with the build.
ALTER TABLE builds ADD COLUMN pgid integer;
