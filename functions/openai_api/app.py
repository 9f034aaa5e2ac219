"""A stand-in for the OpenAI-compatible app, so that this function packages, synthesizes and
starts before the app itself lands: the app's own ``app.py`` replaces this file whole.

It has no routes: every request is a 404 (which the adapter's readiness check accepts).
"""

from fastapi import FastAPI

from functions.contract import OPENAI_BASE_PATH

app = FastAPI(
    title="OpenAI-compatible API (stand-in)", description=f"Routes under {OPENAI_BASE_PATH}"
)
