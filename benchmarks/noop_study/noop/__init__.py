"""A study whose task does nothing: what the benchmarks run to measure overheads."""
