"""nmt-serve: the REST API (app), batching across requests (batcher), the served models and the web page (static/)."""
