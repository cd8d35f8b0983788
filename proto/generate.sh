#!/usr/bin/env bash
# Regenerate the committed Python stubs from proto/jobplane/v1/*.proto.
# Run from anywhere; needs grpcio-tools (pinned in pyproject's [test] extra).
set -euo pipefail
cd "$(dirname "$0")"
rm -f jobplane/v1/*_pb2.py jobplane/v1/*_pb2.pyi jobplane/v1/*_pb2_grpc.py
python -m grpc_tools.protoc -I . \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  jobplane/v1/*.proto
