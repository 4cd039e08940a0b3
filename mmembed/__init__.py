"""mmembed: rank new photos for a target community."""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # faiss and torch each bring an OpenMP runtime
__version__ = "0.1.0"
