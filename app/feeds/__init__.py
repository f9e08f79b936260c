"""Feeds: what should be in the bucket for a resource type and account, the coverage of every day, the planner that
submits jobs for missing days, daily exports, and the per-feed summaries health and metrics read."""
