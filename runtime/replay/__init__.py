"""Re-execution of recorded runs and their divergences (moved here; see _rerun.py)."""
