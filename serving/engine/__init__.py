"""The engine layout: one engine process per device, front-end worker processes around it.

An engine (``process.py``, run as ``python -m serving.engine``) owns the ONNX Runtime
sessions and batchers of the models placed on its device: the per-worker layout's
``ModelRegistry`` and ``Batcher``, unchanged, with its repository poller. Front ends
(``modelserve serve`` workers) keep everything that decodes and validates a request
(manifests, codecs, admission) but no session: their registry (``mirror.py``) mirrors
the engines' model states, and each served version's backend (``client.py``) hands the
ready tensors to an engine and awaits the outputs. Batches form in the engine, across
every front end.

Transport (docs/architecture.md, "Engine transport"): ZeroMQ for the messages (a ROUTER
socket in the engine, a DEALER per front end, over ipc://), and a shared-memory arena per
front end for input tensor bytes (``arena.py``); ``wire.py`` is the message vocabulary.
``group.py`` starts, watches and restarts engine processes; ``placement.py`` decides the
layout, the devices and which models go where.
"""
