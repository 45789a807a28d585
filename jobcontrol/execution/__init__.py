"""Running builds: a run of a plan (:mod:`.orchestrator`), one build's capture in a child
process (:mod:`.runner`, :mod:`.forkserver`), and the executors that start them here
(:mod:`.local`) or on Celery workers (:mod:`.remote`, :mod:`.celery`)."""
