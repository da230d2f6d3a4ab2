from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

# `users(search: ...)` finds users whose email contains a text. The trigram table this replaces
# (users_email_search, FTS5) read the row list of every trigram of the text, and a trigram that
# a tenth of the emails hold (`000` among `userNNNNNNN@...`) made a search for one of them grow
# with the users (1.3 to 1.5 times as long at 100,000 users as at 100 in bench/growth.py). A
# text is in an email exactly when it begins one of the email's suffixes, so this table holds
# every suffix of every email, cut to SUFFIX_CHARS (16) characters, beside its email, in one
# B-tree: a search reads the range of suffixes that begin with the text (its first 16
# characters when it is longer), which holds just the emails that contain it, whatever the
# number of users. models/users.py matches every candidate against `users` itself.
#
# The cost is room: one row per character of an email, about 1.2 kB a user (the trigram table
# took about 0.13). Triggers keep it in the transaction that inserts, deletes or changes a
# user's email. A trigger cannot count (SQLite allows no WITH in one), so the positions come
# from a table of the numbers 1 to 1,024, or to the longest email already there: Keyturn
# refuses emails longer than 254 characters, SQLite does not (its VARCHAR has no length), so
# an email longer than the table, which the search could not find, is refused as it is
# written. No model changes, so MODELS_STATE is the previous migration's.

_SUFFIXES_OF = """
    SELECT DISTINCT substr({email}, "n", 16), {email} FROM "users_email_positions"
    WHERE "n" <= length({email})"""


async def upgrade(db: BaseDBAsyncClient) -> str:
    new, old = _SUFFIXES_OF.format(email='NEW."email"'), _SUFFIXES_OF.format(email='OLD."email"')
    return f"""
        DROP TRIGGER IF EXISTS "users_email_search_update";
        DROP TRIGGER IF EXISTS "users_email_search_insert";
        DROP TABLE IF EXISTS "users_email_search";
        CREATE TABLE "users_email_positions" ("n" INTEGER PRIMARY KEY NOT NULL);
        WITH RECURSIVE "p"("n") AS (
            SELECT 1 UNION ALL SELECT "n" + 1 FROM "p"
            WHERE "n" < max(1024, (SELECT coalesce(max(length("email")), 0) FROM "users"))
        )
        INSERT INTO "users_email_positions" ("n") SELECT "n" FROM "p";
        CREATE TABLE "users_email_suffixes" (
            "suffix" TEXT NOT NULL,
            "email" TEXT NOT NULL,
            PRIMARY KEY ("suffix", "email")
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO "users_email_suffixes" ("suffix", "email")
        SELECT DISTINCT substr(u."email", p."n", 16), u."email"
        FROM "users" AS u JOIN "users_email_positions" AS p ON p."n" <= length(u."email");
        CREATE TRIGGER "users_email_suffixes_too_long" BEFORE INSERT ON "users"
        WHEN length(NEW."email") > (SELECT max("n") FROM "users_email_positions")
        BEGIN
            SELECT RAISE(ABORT, 'users.email is longer than the search index holds');
        END;
        CREATE TRIGGER "users_email_suffixes_too_long_update" BEFORE UPDATE OF "email" ON "users"
        WHEN length(NEW."email") > (SELECT max("n") FROM "users_email_positions")
        BEGIN
            SELECT RAISE(ABORT, 'users.email is longer than the search index holds');
        END;
        CREATE TRIGGER "users_email_suffixes_insert" AFTER INSERT ON "users"
        BEGIN
            INSERT OR IGNORE INTO "users_email_suffixes" ("suffix", "email"){new};
        END;
        CREATE TRIGGER "users_email_suffixes_update" AFTER UPDATE OF "email" ON "users"
        WHEN NEW."email" IS NOT OLD."email"
        BEGIN
            DELETE FROM "users_email_suffixes" WHERE ("suffix", "email") IN ({old});
            INSERT OR IGNORE INTO "users_email_suffixes" ("suffix", "email"){new};
        END;
        CREATE TRIGGER "users_email_suffixes_delete" AFTER DELETE ON "users"
        BEGIN
            DELETE FROM "users_email_suffixes" WHERE ("suffix", "email") IN ({old});
        END;"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP TRIGGER IF EXISTS "users_email_suffixes_delete";
        DROP TRIGGER IF EXISTS "users_email_suffixes_update";
        DROP TRIGGER IF EXISTS "users_email_suffixes_insert";
        DROP TRIGGER IF EXISTS "users_email_suffixes_too_long_update";
        DROP TRIGGER IF EXISTS "users_email_suffixes_too_long";
        DROP TABLE IF EXISTS "users_email_suffixes";
        DROP TABLE IF EXISTS "users_email_positions";
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
