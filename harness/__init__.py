"""Scenario runs, taps on every hop and cross-message checks.

- :mod:`.trace`: the trace record (:class:`TraceRecord`), its NDJSON writer
  and reader (format in ``docs/trace-format.md``); every trace line is also a
  record ``chargetwin validate`` reads.
- :mod:`.invariants`: the checks over a whole trace, one small pure function
  each, and :func:`run_checks` that runs them all.
"""
