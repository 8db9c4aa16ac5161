"""Streaming analysis of stores larger than memory (SPEC quantities from mergeable statistics)."""
