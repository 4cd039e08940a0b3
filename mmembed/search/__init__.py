"""FAISS index of post vectors: build (CPU or GPU), write/read, neighbours."""

from mmembed.search.index import PostIndex, SearchSettings, default_nlist, num_gpus

__all__ = ["PostIndex", "SearchSettings", "default_nlist", "num_gpus"]
