"""``python -m jobcontrol``."""

from jobcontrol.cli import main

main(prog_name="jobcontrol")
