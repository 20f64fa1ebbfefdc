"""The application interface: routing, webhooks, the app's tools, call control, records, metrics.

Pure cores (route matching, signing, record building, request validation) and thin I/O edges
(HTTP server and client, SQLite writer, metrics registry). Nothing here runs on the media clock.
"""
