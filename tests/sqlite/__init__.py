"""Tests specific to the SQLite backend: files, processes, failures."""
