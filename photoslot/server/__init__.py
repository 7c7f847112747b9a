"""The aiohttp server: app.py registers every route table; toolkit.py is what handlers share;
ingest*.py is the booth's hot path; api_*.py the admin API by resource; public_*.py the links."""
