from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

# `users(...) { totalCount }` without a search is the admin console's first page: a COUNT(*) over
# every user, which grows with the table. The number of users is kept instead in a one-row table
# that triggers on `users` maintain in the same transaction as each insert, delete or truncate,
# so it is exact whenever read. Statement-level triggers with transition tables: a bulk insert
# updates the row once. The triggers come first: CREATE TRIGGER locks `users` against writes
# until this transaction commits, so the starting count below misses no concurrent insert; on
# a large table that holds writes to `users` (a login's last_login_at among them) for as long
# as the count takes, about a second per ten million users.
# Concurrent inserts of users (registrations) take turns on the row until they commit.
# No model changes, so MODELS_STATE is the previous migration's.


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        CREATE TABLE "users_count" (
            "id" SMALLINT NOT NULL PRIMARY KEY CHECK ("id" = 1),
            "users" BIGINT NOT NULL
        );
        CREATE FUNCTION "users_count_added"() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE "users_count" SET "users" = "users" + (SELECT COUNT(*) FROM "added");
            RETURN NULL;
        END $$;
        CREATE FUNCTION "users_count_removed"() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE "users_count" SET "users" = "users" - (SELECT COUNT(*) FROM "removed");
            RETURN NULL;
        END $$;
        CREATE FUNCTION "users_count_emptied"() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE "users_count" SET "users" = 0;
            RETURN NULL;
        END $$;
        CREATE TRIGGER "users_count_insert" AFTER INSERT ON "users"
            REFERENCING NEW TABLE AS "added"
            FOR EACH STATEMENT EXECUTE FUNCTION "users_count_added"();
        CREATE TRIGGER "users_count_delete" AFTER DELETE ON "users"
            REFERENCING OLD TABLE AS "removed"
            FOR EACH STATEMENT EXECUTE FUNCTION "users_count_removed"();
        CREATE TRIGGER "users_count_truncate" AFTER TRUNCATE ON "users"
            FOR EACH STATEMENT EXECUTE FUNCTION "users_count_emptied"();
        INSERT INTO "users_count" ("id", "users") SELECT 1, COUNT(*) FROM "users";"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP TRIGGER IF EXISTS "users_count_truncate" ON "users";
        DROP TRIGGER IF EXISTS "users_count_delete" ON "users";
        DROP TRIGGER IF EXISTS "users_count_insert" ON "users";
        DROP FUNCTION IF EXISTS "users_count_emptied"();
        DROP FUNCTION IF EXISTS "users_count_removed"();
        DROP FUNCTION IF EXISTS "users_count_added"();
        DROP TABLE IF EXISTS "users_count";"""


MODELS_STATE = (
    "eJztm21P4zgQgP9KlE+cxKFSCrtCp5MKFG1voT3R9u60e6vIJCa1SOxu4vAijv9+YzdpXt"
    "1tQwOhmy+Ijmcc55l44hk7T7rLLOz4exMfe/qx9qRT5GL4JyXf1XQ0m8VSIeDo2pGKAWhI"
    "Cbr2uYdMDsIb5PgYRBb2TY/MOGEUpDRwHCFkJigSaseigJLvATY4szGfyoF8/QZiQi38gH"
    "3x86tuehhxbBmIi4sRS/8mVGa3xg3BjpUaOzRCk5Qb/HEmZZNJ/+xcaoohXBsmcwKXxtqz"
    "Rz5ldKEeBMTaEzaizcYUe+LiiVsTIw8RRKL5XYCAewFeDN+KBRa+QYEjAOm/3QTUFFw0eS"
    "Xxp/N7OLSEmmEMhmNj1Bsbhr4GT5NR4QtCuYD39DzvNwYipbq4wOmn7tXOwdEvEgHzue3J"
    "RolLf5aGiKO5qXRETBm7iDh50KdT5BWDXhhkWMNQq6EcAaoAqe6iB8PB1OZT+Nk+7Cxh/F"
    "f3SmIGLcmZwSyZz51B2NSetwneMd8Z8v175lnGFPnTdTjnDDfDOxLEwONp/gbED1cifriE"
    "+GGWuMdAqRB0jwauhN2HMSFq4hz0yPb1WMvIu2bI0Cej3tWxJiz/pd2zy/7gWEOWS6hewg"
    "f7Ryu4YP9I6QHRlHYA8Q14gZC7Ai+cMACMqCKEJ+0yHrgGw6pcEEWc143ZJ8PhhejZ9f3v"
    "jhT0xxnGk8uTHrCX6EGJcCnuD8YZ4JzdYmrcwRtcDC8HvU95MfCcXQY63EVVzFtVxRdbjO"
    "DX9n7nQ+fjwVHnI6jIUS4kH5b4JI82vV5Jcz2DFk5cXAw3bZkha4Wme9E/7zCUL+E47l/2"
    "RuPu5Z+pB/ysO+6JlraUPmakO9kQs+hE+7s//qSJn9qX4aCXXeQs9MZfdDEmFHBmUHZvIC"
    "vJJBJHopSbg5lV0s1py8bNtXazg3xuOMwmtISnc8YbcHb46ml8vXlfL9bP5hRRu9TcVnTR"
    "+L1ufhc1hJvbRH4rBNfIvL1H4L1US/yA+NgX6x6/YJUaWp5/vsIO4sWLo7C0Mpr38n4Dey"
    "wNn8vULEKyvPFCRt3AIrx3h1daTtZzavyAkrhBA4s7bFDlUYnZyNpMNT/zTW7bzUoQRba8"
    "JXFtcaXM/CuoeiamprrwmYwCFdc+Rb5uzOuUTRm0ZmXQd5hCV1ml23QWHXgehDRjTmu9J7"
    "rIdpPPdz2CZqnHObHY9fAdYYFfinCh8QsQ1/O19ELCHuMlKwRpy6ZCULvsoan3/XRulrUc"
    "WI+VcXTWtnF1rV2NH2YEuivh6LRl4+ZauxlyN3Acx0Z5fyu6aBxfa8eTmdCGDgsqL+rTFW"
    "mrUtv9NVvmpnf1O6scrOioz1V0cscqZPUC2WFlalXOaavt43y4314BNGgpScu2TK6B7yAT"
    "K5VrpCybjYo6B67IV5A3+EU1J/Wkyltu38Q6WGVeHain1UFuViXKr6tWRhImTckJcOb22d"
    "J082jPmYeJTT/jx9y5u+L9j+ik8vtEmtv6ALGH7hdV/eQDBfcOd4znZ7pOu6PT7llPf1Zv"
    "XFa5iZLYdSrYR0nvSam3UrK7YK9+lHxXazZZ3jpE7C7ZZGmKaz/FwuYWGK6znIn0t/CAe6"
    "e1ShrWUqdhrewqJtyvXnMhk7Zq9naemxJCU0KoCedKSggW5oXfdf0xGg6KMccW2dcrMbn2"
    "n+YQ//2eSSoiK1CkXqkR0J3L7j9Z1qcXw5NsJBEdnGS4w3KXrZtlJm2a0FyTpH1raNYmZ6"
    "8n0dIpO1xfG0wuLvT8/G+Y/oBpMuIpoL5RIQR7xJzqRUWQecvu0gJIrFNl6WOtKoby5GJh"
    "hCw4rhj672XVi9qfVVQXLZRnQtUrVvVx0G3IaSv5aFtMqjUIh+pbSHe/tUrJALTUH2S3ck"
    "UDuCIvzLrU6UDC5EX5QN1ov0ZCsMbnSJt/mT3/D/E4fhk="
)
