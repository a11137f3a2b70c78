"""The offline Messages-API simulator and its scripted policies (moved here; see _server.py)."""
