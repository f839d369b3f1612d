"""iovirtctl --json's error object, as the tests read it."""

import json


def error_object(out):
    """The error object when stdout is exactly one {"error": {...}} with a
    string name and message; else None"""
    try:
        doc = json.loads(out)
    except ValueError:
        return None
    if not isinstance(doc, dict) or list(doc) != ["error"] or not isinstance(doc["error"], dict):
        return None
    e = doc["error"]
    return e if isinstance(e.get("name"), str) and isinstance(e.get("message"), str) else None
