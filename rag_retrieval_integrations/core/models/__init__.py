"""The model families behind ``Reranker``: one module per family, one registry, checkpoint detection."""
