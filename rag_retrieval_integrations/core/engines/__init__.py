"""Existing engines under this project's APIs: ``qdrant/`` stores and searches an :class:`~..indexes.base.Index`
in Qdrant (Qdrant Edge in-process by default, a Qdrant server or cluster through ``qdrant-client``)."""
