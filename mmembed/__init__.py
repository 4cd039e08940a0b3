"""mmembed: rank new photos for a target community."""
__version__ = "0.1.0"
