"""Erasure and field redaction of stored day files (issue 22: retention and erasure the relay respects).

A day file is gzip JSON lines, one Twilio record per line, possibly several GiB. Honouring an erasure request
(drop every record whose ``to`` is a given number) or a redaction policy (no ``body``, pseudonymous ``to``/``from``)
means rewriting the stored file. ``rules`` holds the validated rules and the salted hashes (pure, no I/O);
``rewrite`` streams a day file through them in bounded memory, and ``scan`` tells whether a day needs it.

Imports only the standard library and ``app.bucket.gzip_check`` (the inflate backend it picks), so the copy path
(workers) and an erasure task can both use it.
"""
