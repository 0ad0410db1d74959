"""__NAME__: prints N points in the unit square (run as `python solver/main.py N`). Fixed: the model
rewrites solver/layout.py and solver/lattice.py."""

import json
import sys

from layout import place

if __name__ == "__main__":
    print(json.dumps(place(int(sys.argv[1]))))
