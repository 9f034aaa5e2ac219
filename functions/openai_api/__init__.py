"""The OpenAI-compatible API (``/v1/models``, ``/v1/chat/completions``): an ASGI app that
uvicorn serves behind the Lambda Web Adapter, so that answers stream as server-sent events,
which a Python handler cannot do by itself."""
