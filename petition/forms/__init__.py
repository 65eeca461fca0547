"""Flask-WTF forms: the shape of input, with clear messages. They never touch the database."""
