"""Serving: the serving directory (layout, pushes, claims, what is complete), the model config TF Serving polls
(rollback, pin, unpin, promote), and the clients (predict over a local model, REST or gRPC)."""
