"""Runnable examples; each one is exercised by the test suite."""
