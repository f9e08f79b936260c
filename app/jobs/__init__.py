"""Export jobs the relay tracks: their records in Redis, submission, the lifecycle a sync drives, operator actions,
the JSON documents shown for them, retention scans, recovery of a lost registry, and the events they emit."""
