"""Export jobs the relay tracks: their records and Redis stores (jobs, days, webhook tokens, the registry's marks),
submission, the lifecycle a sync drives, operator actions, the JSON documents shown for them, retention scans,
recovery of a lost registry, and the events they emit."""
