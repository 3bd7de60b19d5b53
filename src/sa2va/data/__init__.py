"""Training data: one common sample type, readers for the public dataset formats, tokenisation and batching."""
