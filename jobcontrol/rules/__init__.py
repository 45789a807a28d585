"""What to build and with what, each rule written once: the graph (:mod:`.graph`), the
outdated rules (:mod:`.outdated`), the steps of a run and what each consumes (:mod:`.plan`).
Pure functions and frozen values; callers pass the storage's summaries in."""
