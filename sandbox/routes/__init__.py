"""The API listener's routes, one blueprint per resource.

exports (FetchExport), config (ExportConfiguration), jobs (custom jobs), days (ListDay/FetchDay),
accounts (Twilio's Accounts API, 2010-04-01), control (``/_sandbox/*``, the test-only control API and
its contract); common (context, Twilio errors, paging) and hooks (auth, faults, request log, error
handlers) are shared by all of them.
"""
