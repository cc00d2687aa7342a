"""The HTTP API (FastAPI): routes that validate input, call the policy and query services
through dependencies, and shape responses. Routes never decide access.
"""
