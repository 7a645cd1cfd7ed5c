"""Generated protobuf modules for Sawtooth 1.x's wire format (from ``proto/``).

Regenerate with ``python scripts/gen_protos.py``; never edit the ``*_pb2`` files by hand. The
module names match Sawtooth's so that a compatibility shim can stand them in for the SDK's.
"""
