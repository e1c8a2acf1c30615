"""The one entry point for people and CI: ``nox -s tests``, ``nox -s lint``, ...

Every session installs chargetwin itself (not in editable mode), so the
tests see what a user's ``pip install`` gives them, package data included.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite on all cores (pytest with xdist). Extra arguments go to pytest."""
    session.install(".[test]")
    if shutil.which("npm"):  # the ws package, for the test with a client nobody here wrote
        session.run("npm", "ci", "--no-audit", "--no-fund", "--prefix", "tests/e2e/node", external=True)
    else:
        session.warn("npm not found: the Node.js client test will be skipped")
    session.run("pytest", "-n", "auto", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff on the sources, tests, benchmarks and this file."""
    session.install("ruff>=0.17,<0.18")
    session.run("ruff", "check", "src", "contracts", "twin", "harness", "reports", "tests",
                "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the installed package."""
    session.install(".[lint]")
    config = str(Path("pyproject.toml").resolve())
    # Check the installed copy: the source tree maps folders onto subpackages
    # (pyproject's package-dir), which mypy cannot follow from the checkout.
    session.chdir(session.create_tmp())
    session.run("mypy", "--config-file", config, "-p", "chargetwin",
                "--python-executable", str(session.virtualenv.bin) + "/python")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: they report figures and assert nothing. ``nox -s bench -- --out bench.json``."""
    session.install(".[test]")
    session.run("python", "benchmarks/bench_validation.py", *session.posargs)
    session.run("python", "benchmarks/bench_model.py", *session.posargs)
    session.run("python", "benchmarks/bench_fanout.py")
    session.run("python", "benchmarks/bench_http.py")
    session.run("python", "benchmarks/bench_memory.py")
    session.run("python", "benchmarks/bench_soak.py")


@nox.session(python=PYTHON)
def contracts(session: nox.Session) -> None:
    """``chargetwin check``: ``nox -s contracts -- --backend URL --gateway URL [--redis URL] [--ocpp URL] ...``.

    Without ``--backend``, against the reference services, each started as
    its own process (backend, CMS without charge points, gateway), with
    every phase; the other arguments go to ``check`` either way. Results
    and JUnit in ``out/check`` unless ``--out`` says otherwise.
    """
    session.install(".")
    if "--backend" in session.posargs:
        session.run("chargetwin", "check", *session.posargs)
    else:
        session.run("python", "-m", "chargetwin.harness.conformance.reference", *session.posargs)


@nox.session(python=PYTHON)
def scenario(session: nox.Session) -> None:
    """``chargetwin run``: ``nox -s scenario -- SCENARIO [run options]`` (default: the smoke scenario)."""
    session.install(".")
    session.run("chargetwin", "run", *(session.posargs or ["smoke"]))
