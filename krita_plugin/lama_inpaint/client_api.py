"""The backend client as the plugin uses it, from one place.

`lama-backend package-plugin krita` copies `lama_backend.client` into this package as
`lama_client`, so an installed plugin needs nothing beyond Krita's own Python. In a development
checkout (and in the fast tests) the copy is absent and the installed `lama_backend.client` is used.
"""
import os

if os.path.isdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "lama_client")):
    from .lama_client import (BackendError, BackendUnavailable, InpaintRequest, JobCancelled,
                              LamaClient, ensure_backend, region, session)
    from .lama_client.protocol import DEFAULT_ADDRESS
else:
    from lama_backend.client import (BackendError, BackendUnavailable, InpaintRequest, JobCancelled,
                                     LamaClient, ensure_backend, region, session)
    from lama_backend.client.protocol import DEFAULT_ADDRESS

__all__ = ["BackendError", "BackendUnavailable", "DEFAULT_ADDRESS", "InpaintRequest", "JobCancelled",
           "LamaClient", "ensure_backend", "region", "session"]
