# attack: sys.exit(0) while the file is being imported
import sys

sys.exit(0)
