"""A tiny study whose task does what its config says: print, log metrics, sleep, fail."""
