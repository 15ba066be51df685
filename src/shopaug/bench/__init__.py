"""Benchmarks users run on their own data: ``shopaug bench search|rec``."""
