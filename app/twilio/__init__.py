"""Twilio's side: the BulkExports client, its statuses, and the accounts the relay serves (credentials, labels, and
their recorded states)."""
