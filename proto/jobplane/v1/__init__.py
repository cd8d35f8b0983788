"""The jobplane.v1 contract: generated stubs (never edit the *_pb2 files; run proto/generate.sh)."""
