"""Shared CLI plumbing: one-line errors, exit codes, --debug tracebacks, SIGTERM handled like Ctrl-C."""
from __future__ import annotations

import contextlib
import signal
import sys


class Terminated(KeyboardInterrupt):
    """SIGTERM (e.g. `timeout`, a job scheduler) raised as an interrupt, so every `finally` cleans up."""


@contextlib.contextmanager
def sigterm_as_interrupt():
    def handler(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_main(fn, debug: bool, interrupted: str = "nothing was written") -> int:
    from l2v.errors import L2VError

    import warnings

    try:
        with sigterm_as_interrupt(), warnings.catch_warnings():
            if not debug:  # libraries' deprecation notices are for their callers' developers, not our users
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
            fn()
        return 0
    except L2VError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(f"{what}: {interrupted}", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except Exception as e:  # unexpected: still one line, with how to see more
        if debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        print(f"error: unexpected {type(e).__name__}: {first} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1
