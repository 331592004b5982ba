"""HTTP edges: the public API (operator and tenant admin keys) and the internal API."""
