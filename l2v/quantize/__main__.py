import sys

from l2v.quantize.cli import main

sys.exit(main())
