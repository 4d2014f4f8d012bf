import sys
from pathlib import Path

# worker modules for lab_utils.dist tests are imported by name in spawned processes
sys.path.insert(0, str(Path(__file__).parent))
