"""Benchmarks of jobcontrol, side by side with the tools a user would pick instead.

``python -m benchmarks`` runs every workload (see :mod:`benchmarks.workloads`) several times,
each run a fresh subprocess, alternating the tools, and prints medians, ranges, ratios to
jobcontrol and peak memory. It installs nothing: ``benchmarks/requirements.txt`` lists the
peers, and a peer whose package or service is missing is reported as skipped.
"""
