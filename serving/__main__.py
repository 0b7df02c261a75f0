"""``python -m serving [flags]`` is ``modelserve serve [flags]``."""

import sys

from serving.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
