"""Recorded events: the EventStore and the tables joined from it."""

from .event_store import EventStore

__all__ = ["EventStore"]
