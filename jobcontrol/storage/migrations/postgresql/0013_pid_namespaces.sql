-- jobcontrol schema 13: the boot and PID namespace of a build's runner (BOOT~PIDNS, see
-- jobcontrol/execution/identity.py), recorded when it starts. Two runners with the same
-- hostname in separate PID namespaces (containers with host networking, cloned VMs) share
-- a storage: a pid means a process only in its own namespace, so a runner judges another's
-- build by its pid only when both namespaces are one; else by its heartbeat alone.
-- Builds recorded before (NULL) are judged as they were: by host and pid.
ALTER TABLE builds ADD COLUMN pid_namespace text;
