"""The peers' side of each workload: each tool's normal, tracked path (see README.rst,
"Benchmarks", for exactly what each one records)."""
