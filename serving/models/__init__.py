"""The model lifecycle: the repository contract (manifest), scanning it, the registry of
served versions, one served version (session, codec, batcher), the repository watcher and
the ONNX Runtime wrapper. Protocols reach models only through serving.dataplane."""
