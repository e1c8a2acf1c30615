"""Scenario runs, taps on every hop and cross-message checks: lands with the runner issue."""
