"""Training side: trains the seed Keras models on real data, exports them to a model repository."""
