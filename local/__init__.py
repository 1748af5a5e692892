"""Local tooling: never part of the Lambda zip (which is src/ only)."""
