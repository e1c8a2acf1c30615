"""chargetwin: a digital twin and contract-test harness for an EV-charging system.

Subpackages (see ARCHITECTURE.md for the layering):

- :mod:`chargetwin.contracts`: JSON Schemas, API documents and the validator
- :mod:`chargetwin.twin`: the SimPy world model and the reference services
- :mod:`chargetwin.harness`: scenario runs, taps and cross-message checks
- :mod:`chargetwin.reports`: HTML conformance reports
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("chargetwin")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
