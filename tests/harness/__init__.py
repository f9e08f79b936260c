"""Test harness: real servers (redis, moto S3, the Twilio sandbox, gunicorn, rq) on free loopback ports."""
