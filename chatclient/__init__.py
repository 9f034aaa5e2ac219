"""A terminal client of the AI Assistant API (``make chat``) and a post-deploy smoke test built on
it (``make smoke``). It speaks to any deployment: the dev server or a real stage."""
