import os
import sys

# The helper modules (broker_support, _asyncio_support, ...) live in the parent folder.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
