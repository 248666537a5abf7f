"""The PostgreSQL backend (`postgresql://`): psycopg 3 and its pool; see docs/postgres.md."""
