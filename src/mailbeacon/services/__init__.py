"""The service layer: what the CLI, the HTTP API and the dashboard all call.

Each module is one concept of the product (API keys, reports, sending, ...),
written against the store; ``cli/`` and ``web/`` only parse input and render
output around these functions.
"""
