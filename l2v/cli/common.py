"""Shared CLI plumbing: one-line errors, exit codes, --debug tracebacks."""
from __future__ import annotations

import sys


def run_main(fn, debug: bool) -> int:
    from l2v.errors import L2VError

    try:
        fn()
        return 0
    except L2VError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    except Exception as e:  # unexpected: still one line, with how to see more
        if debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        print(f"error: unexpected {type(e).__name__}: {first} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1
