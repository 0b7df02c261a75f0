"""Training side: trains the seed Keras models on real data and exports them to a model repository."""
