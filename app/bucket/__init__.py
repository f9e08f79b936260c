"""What the bucket holds: the store probe, the listing checks, verification of stored days and layout migration."""
