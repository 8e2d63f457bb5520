"""``python -m rag_retrieval_train <trainer> --config cfg.yaml [--key value ...]``."""

import sys

from .cli import main

sys.exit(main())
