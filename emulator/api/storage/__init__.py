"""Built-in path-style S3-compatible object store, served as a standalone ASGI app."""

from emulator.api.storage.app import create_storage_app, is_s3_request

__all__ = ["create_storage_app", "is_s3_request"]
