"""Video input: lazy frame sources, key-frame choice and SAM2 propagation through the frames."""
