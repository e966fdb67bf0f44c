"""Foundations every layer stands on: name lookups, random draws, results files, run folders, worker processes."""
