import os
import sys

# the fabricated data dir helper lives in tests/eval (fake_data.py)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "eval"))
