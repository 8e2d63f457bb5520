"""Queries and documents shared by the LangChain and LlamaIndex wrapper tests (words of the tiny tokenizers' corpus)."""

QUERY = "what is a panda?"
QUERIES = [QUERY, "capital of france", "who wrote Hamlet?", "how tall is Everest?"]
TEXTS = [
    "The giant panda is a bear native to China.",
    "Paris is the capital and most populous city of France.",
    "Pandas eat bamboo for most of the day and live in mountain forests.",
    "A python is a large snake found in Africa, Asia and Australia.",
    "The red panda is not closely related to the giant panda.",
    "Shakespeare wrote Hamlet, Macbeth and many other plays.",
    "Mount Everest is the highest mountain above sea level.",
    "The Eiffel Tower is a wrought-iron lattice tower in Paris.",
]
