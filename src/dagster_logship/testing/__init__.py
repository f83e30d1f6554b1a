"""What users need to test their own jobs offline: moto helpers and a fake Cloud Logging server."""

__all__: list[str] = []
