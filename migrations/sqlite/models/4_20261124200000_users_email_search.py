from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

# `users(search: ...)` finds users whose email contains a text. Without an index SQLite can only
# walk every email, which grows with the users (9-14 times as long at 100,000 users as at 100 in
# bench/growth.py). PostgreSQL's answer is a trigram index (pg_trgm); SQLite's is an FTS5 table
# with the trigram tokenizer, whose `LIKE '%text%'` finds the rows holding every trigram of the
# text. It is a filter only: models/users.py matches its candidates against `users` itself, so
# a stale entry can never make a user appear that does not match.
#
# Triggers fill it in the transaction that inserts a user or changes an email. It is never
# deleted from: rows are found by the user's id (the table's own rowid is not stable, since
# `users` has no INTEGER PRIMARY KEY and VACUUM may renumber it), and deleting by an unindexed
# id would read the whole table. Keyturn neither deletes users nor changes emails; a row left
# behind by either done in SQL costs a little in a search that matches its text, nothing more.
# No model changes, so MODELS_STATE is the previous migration's.


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        CREATE VIRTUAL TABLE "users_email_search" USING fts5(
            "email", "id" UNINDEXED, tokenize = 'trigram'
        );
        INSERT INTO "users_email_search" ("email", "id") SELECT "email", "id" FROM "users";
        CREATE TRIGGER "users_email_search_insert" AFTER INSERT ON "users"
        BEGIN
            INSERT INTO "users_email_search" ("email", "id") VALUES (NEW."email", NEW."id");
        END;
        CREATE TRIGGER "users_email_search_update" AFTER UPDATE OF "email" ON "users"
        WHEN NEW."email" IS NOT OLD."email"
        BEGIN
            INSERT INTO "users_email_search" ("email", "id") VALUES (NEW."email", NEW."id");
        END;"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP TRIGGER IF EXISTS "users_email_search_update";
        DROP TRIGGER IF EXISTS "users_email_search_insert";
        DROP TABLE IF EXISTS "users_email_search";"""


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
