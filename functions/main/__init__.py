"""The main function: the REST API (FastAPI on Mangum). Entry point: ``handler.handler``."""
