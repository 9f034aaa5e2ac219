"""One router per resource of the REST API, each under ``contract.API_BASE_PATH``."""
