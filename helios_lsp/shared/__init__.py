"""One engine per user and engine settings, shared by every Helios process (see daemon.py)."""
