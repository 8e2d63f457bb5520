"""Text into model inputs: input checks, pair encoding, windows for long documents, batching, truncation stats."""
