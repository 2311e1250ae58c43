"""One module per measurement; each returns plain data (records and summaries) for the report."""
