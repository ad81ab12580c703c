"""`python -m l2v.quantize`: the entry point of `l2v-quantize` (l2v/cli/quantize.py)."""
import sys

from l2v.cli.quantize import main

sys.exit(main())
