-- jobcontrol schema 10: left empty on this branch: the number belongs to a migration made
-- alongside it (the merge replaces this file with that one), so that 11 follows 10.
SELECT 1;
