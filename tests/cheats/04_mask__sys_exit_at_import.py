# attack: sys.exit(0) while the file is being imported
# layer: host (a file that cannot load scores 0)
import sys

sys.exit(0)
