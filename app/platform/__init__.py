"""What every other package stands on: settings, the clock, errors, logs, metrics, queues, the daily quota, locks,
limits, URL policy, the S3 client and input validation. Imports nothing else from app."""
