"""LIIF Zoom: ``python main.py [IMAGE] [--checkpoint C] [--device cpu|cuda|mps]``."""
import sys

from viewer.app import main

if __name__ == "__main__":
    sys.exit(main())
