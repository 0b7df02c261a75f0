"""Client libraries for modelserve: REST and gRPC with the same method names."""
