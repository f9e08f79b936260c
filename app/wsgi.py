"""WSGI entry point for gunicorn: ``gunicorn -c deploy/gunicorn.conf.py app.wsgi:app``."""

from app import create_app
from app.platform.config import load_settings, require_web_settings

app = create_app(require_web_settings(load_settings()))
