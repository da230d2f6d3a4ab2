from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

# `users(search: ...)` finds users whose email contains a text. The trigram index this replaces
# (idx_users_email_trgm, pg_trgm) read the row list of every trigram of the text, and a trigram
# that a tenth of the emails hold (`000` among `userNNNNNNN@...`) made a search for one of them
# grow with the users (1.2 to 1.4 times as long at 100,000 users as at 100 in bench/growth.py).
# A text is in an email exactly when it begins one of the email's suffixes, so this GIN index
# holds every suffix of every email, cut to SUFFIX_CHARS (16) characters, as the lexemes of a
# tsvector (array_to_tsvector keeps them as they are: no parser, no case folding), and a search
# asks it for the lexemes that begin with the text (a prefix tsquery, `'text':*`; its first 16
# characters when it is longer), which belong to just the emails that contain it, whatever the
# number of users. models/users.py matches every candidate against the whole text. The query
# is made by keyturn_email_suffix_query, in SQL, so that both sides are cut by the database's
# own substr: on a SQL_ASCII database it counts bytes, not characters.
#
# The cost is room: about 0.7 kB a user (the trigram index took about 0.08). The trigram index
# stays for now, unread by this version: the previous version searches with it while a rollout
# runs both (docs/deployment.md, expand then contract), and a later release drops it. The
# function is written with qualified names, so the index does not depend on a search_path. The
# build holds writes to `users` for a moment (3 s at 100,000 users); deployment.md says how to
# build it beforehand without that. No model changes, so MODELS_STATE is the previous
# migration's.


async def upgrade(db: BaseDBAsyncClient) -> str:
    # An index built beforehand by hand (CREATE INDEX CONCURRENTLY, docs/deployment.md) that
    # failed is left behind invalid, and IF NOT EXISTS would keep it: it is dropped and built
    # (its DROP holds reads of `users` too until the migrations commit; deployment.md says to
    # drop it CONCURRENTLY first). The backslashes are E'' strings: a function's body is read
    # again at each call, under the caller's standard_conforming_strings.
    return r"""
        CREATE OR REPLACE FUNCTION keyturn_email_suffixes(email text) RETURNS tsvector
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT pg_catalog.array_to_tsvector(ARRAY(
            SELECT pg_catalog.substr(email, i, 16)
            FROM pg_catalog.generate_series(1, pg_catalog.length(email)) AS i
        )) $$;
        CREATE OR REPLACE FUNCTION keyturn_email_suffix_query(search text) RETURNS tsquery
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT CAST(
            '''' || pg_catalog.replace(pg_catalog.replace(
                pg_catalog.substr(search, 1, 16), E'\\', E'\\\\'), '''', '''''') || ''':*'
            AS pg_catalog.tsquery
        ) $$;
        DO $$ BEGIN
            IF EXISTS (
                SELECT 1 FROM pg_catalog.pg_index
                WHERE indexrelid = pg_catalog.to_regclass('idx_users_email_suffixes')
                AND NOT indisvalid
            ) THEN
                DROP INDEX "idx_users_email_suffixes";
            END IF;
        END $$;
        CREATE INDEX IF NOT EXISTS "idx_users_email_suffixes" ON "users"
        USING gin (keyturn_email_suffixes("email"));"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP INDEX IF EXISTS "idx_users_email_suffixes";
        DROP FUNCTION IF EXISTS keyturn_email_suffix_query(text);
        DROP FUNCTION IF EXISTS keyturn_email_suffixes(text);"""


MODELS_STATE = (
    "eJztm21P4zgQgP9KlE+cxKFSCrtCp5MKFG1voT3R9u60e6vIJCa1SO1u4hQQx3+/sZs0r4"
    "Y0NGzo5gui4xnHeSbjeMbOoz5jFna8vYmHXf1Ye9QpmmH4JyHf1XQ0n0dSIeDo2pGKPmhI"
    "Cbr2uItMDsIb5HgYRBb2TJfMOWEUpNR3HCFkJigSakcin5LvPjY4szGfyoF8/QZiQi18jz"
    "3x86tuuhhxbBmIi4sRS/8mVOa3xg3BjpUYOzRCk5Qb/GEuZZNJ/+xcaoohXBsmc/wZjbTn"
    "D3zK6Erd94m1J2xEm40pdsXFY7cmRh4gCEXLuwABd328Gr4VCSx8g3xHANJ/u/GpKbho8k"
    "riT+f3YGgxNcMYDMfGqDc2DH0NniajwheEcgHv8WnZbwRESnVxgdNP3audg6NfJALmcduV"
    "jRKX/iQNEUdLU+mIiDKeIeJkQZ9OkZsPemWQYg1DrYZyCKgCpPoM3RsOpjafws/2YecZxn"
    "91ryRm0JKcGUTJMnYGQVN72SZ4R3znyPPumGsZU+RN1+GcMdwM71AQAY/C/AcQPyxE/PAZ"
    "4odp4i4DpVzQPerPJOw+jAlRE2egh7Zvx1rOvGtOGfpk1Ls61oTlv7R7dtkfHGvImhGql/"
    "DB/lEBF+wfKT0gmpIOIJ4BLxCyyPHCCQPAiCqm8LhdygPXYFiVC8IZ523n7JPh8EL0PPO8"
    "744U9McpxpPLkx6wl+hBiXAp7g/GKeCc3WJqLOANLoaXgd6nPB94xi4FHe6iKuatquYXW4"
    "zg1/Z+50Pn48FR5yOoyFGuJB+e8UkWbXK9kuR6Bi2czHA+3KRliqwVmO6F/7zDqfwZjuP+"
    "ZW807l7+mXjAz7rjnmhpS+lDSrqTnmJWnWh/98efNPFT+zIc9NKLnJXe+IsuxoR8zgzK7g"
    "xkxZmE4lCUcLM/t0q6OWnZuLnWbnaQxw2H2YSW8HTGeAPODl49ja837+vV+tmcImqXim1F"
    "F43f6+Z3UUO4uY3lt0JwjczbOwTeS7RED4iHPbHu8XJWqYHl+ecr7CCevzgKSiujZS/vd2"
    "KPpMFzmYgiJMsbr2TU9S3CewtcaDlZz9B4gZK4QQOLO2xQZVGJaGRtporPbNOsPUtLEEW2"
    "vCVxbXGlVPzlVD1joakufMZngYprnyJfN5Z1yqYMWrMy6DtMoaus0m06i/ZdF6Y0Y0lrvS"
    "c6z3aTz3c9Js1Sj3NsseviBWG+V4pwrvErENfztfRKwi7jJSsEScumQlC77KGp9/10bpa1"
    "HFiPlXF02rZxda1dje/nBLor4eikZePmWrsZcjdwHMdGeX8rumgcX2vHk7nQhg5zKi/q0x"
    "VJq1Lb/TVb5iZ39TtFDlZ01OcqOpljFbJ6geygMlWUc9Jq+zgf7rcLgAYtJWnZlso18AIy"
    "sVK5RsKy2aio88QV+gryBi+v5qQOqqzl9gXWQZG4OlCH1UEmqmLl16KVkZhJU3ICnJl9ti"
    "TdLNpz5mJi08/4IXPuLn//Izyp/D6RZrY+QOyiu1VVP/5Awb3DHePlma7T7ui0e9bTn9Qb"
    "l1VuosR2nXL2UZJ7UuqtlPQu2JsfJd/VXthkEQq30EmzBVPDLZim9PZTLHvC+Cu62An1t/"
    "D4e6dVJElrqZO0VnqNE+xmr7nMSVo1Oz9PTYGhKTDUhHMlBQYL89yvvv4YDQf5mCOL9OuV"
    "mFz7T3OI935PLOWRFSgSr9QQ6M5l958069OL4Ul6JhEdnKS4w2KYrZuDxm2aqbkmKf3W0K"
    "xNRl9PoqUTeri+NphcXOjZ+G+YvsA0PuMpoP6gMgl2iTnV80oky5bdZ8sjkU6VhZG1qhjK"
    "c425M2TOYcbAf6+rXtT+JKO6aKE8MapesaoPi25DTlvJJ90iqNYgHKhvId39VpGSAWipP9"
    "duZYoGcEWem3Wp04GYyavygbrRfouEYI2PlTb/Mnv6H2SMhwA="
)
