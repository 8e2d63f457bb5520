"""Searchable document stores built on the model families, all on one ``Index`` base (``base.py``):

- ``colbert.py``: ``ColBERTIndex``, late interaction (token vectors, exact MaxSim, FAISS IVF candidates);
- ``mrl.py``: ``MRLIndex``, the Matryoshka funnel (FAISS shortlist over prefixes, full-vector re-score);
  its model side in ``mrl_encoder.py``, its vector math in ``mrl_vectors.py``;
- ``funnel.py``: the same funnel over a framework's vector store (the retrievers' shared core);
- ``faiss_ops.py``: every FAISS call; ``folder.py``: the index folder (atomic save, manifest, checks).
"""
