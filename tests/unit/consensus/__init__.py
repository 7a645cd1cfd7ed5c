"""Tests of the consensus state machine (issue 6)."""
