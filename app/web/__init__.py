"""The HTTP side: webhook intake, the JSON API, health and metrics, the console, and the OpenAPI document."""
