"""Searchable document stores built on the model families (ColBERT late interaction, Matryoshka vectors)."""
