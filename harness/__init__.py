"""Scenario runs, taps on every hop, and the checks and figures of one stream of observations.

- :mod:`.trace`: the trace record (:class:`TraceRecord`), its NDJSON writer
  and reader (format in ``docs/trace-format.md``); every trace line is also a
  record ``chargetwin validate`` reads.
- :mod:`.pipeline`: the stream of observations and its consumers;
  :mod:`.judge` subscribes the standard ones and adds up the results.
- :mod:`.checks`: the ten checks, online: each decides as soon as it is
  certain, in memory that follows what is live, not the run's length.
- :mod:`.run`: a scenario run against the reference stack;
  :mod:`.replay`: a trace file read back into the same pipeline;
  :mod:`.recording`: the trace of a served stack (``serve --record``).
"""
