"""The lake: every verified day file, typed, in an Apache Iceberg table per resource type (issue 23).

``schemas`` says what a table holds and how a Twilio value becomes a typed one, ``convert`` streams a day file into
bounded Arrow record batches, ``catalog`` builds the Iceberg catalog from settings and the relay's S3 environment,
``tables`` opens tables and commits one (account, day) partition atomically, ``load`` is the one call of the task
that loads a verified day, ``orphans`` expires old snapshots and removes the data files nothing references.
Import it only where the lake is used (it pulls in pyiceberg and pyarrow): the rest of ``app`` does not.
"""
