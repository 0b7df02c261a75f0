"""Wire formats that REST and gRPC share, so both read and write them alike: element
type names by protocol (dtypes), bytes in JSON (b64), and v2 BYTES framing (v2_bytes).
numpy and the standard library only; no web or gRPC library.
"""
