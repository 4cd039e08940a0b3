"""Post sources. Each is a small class, configured under ``conf/data/``, whose ``load()`` returns
a :class:`~mmembed.data.post.Corpus`: the posts plus every input it skipped, with reasons.

Sources never raise for one bad row or file; they raise :class:`SourceError` only when nothing
can be read at all (a missing manifest, a missing folder), with a message that names the fix.
"""

from mmembed.data.post import Corpus


class SourceError(RuntimeError):
    """The source as a whole cannot be read. The message names the path and the fix."""


__all__ = ["Corpus", "SourceError"]
