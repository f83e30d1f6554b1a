"""Destinations. Each sink knows one service's rules and nothing of queues or retries."""
