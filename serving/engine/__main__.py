"""``python -m serving.engine``: one engine process (serving/engine/process.py)."""

import sys

from serving.engine.process import main

if __name__ == "__main__":
    sys.exit(main())
