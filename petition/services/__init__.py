"""The domain rules: plain functions over a SQLAlchemy session, shared by web, API and CLI."""
