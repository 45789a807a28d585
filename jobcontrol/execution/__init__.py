"""Running builds: a run of a plan (:mod:`.orchestrator`), one build's capture in a child
process (:mod:`.runner`, forked here or a warm :mod:`.pool` worker) or in this one
(:mod:`.inline`), the executors that start them here (:mod:`.local`) or on Celery workers
(:mod:`.remote`, :mod:`.celery`), and what a run tells its caller (:mod:`.observer`).
What to build, and with what, is for :mod:`jobcontrol.rules` to say."""
