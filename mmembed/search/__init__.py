"""FAISS index of post vectors: build (CPU or GPU), save/load, neighbours."""

from mmembed.search.index import IDS_FILE, INDEX_FILE, PostIndex, default_nlist, num_gpus

__all__ = ["IDS_FILE", "INDEX_FILE", "PostIndex", "default_nlist", "num_gpus"]
