from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

# The admin search (`users(search: ...)`) is a substring match, LIKE '%text%', which no B-tree can
# serve: a trigram GIN index answers it without reading every user. No model changes, so
# MODELS_STATE is the previous migration's. Trusted since PostgreSQL 13, pg_trgm needs only the
# CREATE privilege on the database. Not CONCURRENTLY (the migrations run in one transaction): the
# build holds writes to `users` for a moment. SQLite has no such index: its search stays a scan.


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX IF NOT EXISTS "idx_users_email_trgm" ON "users" USING gin ("email" gin_trgm_ops);"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    # The extension stays: other objects may have come to depend on it.
    return """
        DROP INDEX IF EXISTS "idx_users_email_trgm";"""


MODELS_STATE = (
    "eJztm21P4zgQgP9KlE97EodKKewKnU4qULS9hfZE27vT7q0ik5jUIrW7icOLOP77jd2keX"
    "VpQ1PSbr4gOp5xnGcyjmfsPOsTZmHH2x952NVPtGedogmGfxLyPU1H02kkFQKObhyp6IOG"
    "lKAbj7vI5CC8RY6HQWRhz3TJlBNGQUp9xxFCZoIioXYk8in54WODMxvzsRzIt+8gJtTCj9"
    "gTP7/pposRx5aBuLgYsfTvQmV6Z9wS7FiJsUMjNEm5wZ+mUjYadc8vpKYYwo1hMsef0Eh7"
    "+sTHjM7VfZ9Y+8JGtNmYYldcPHZrYuQBglA0uwsQcNfH8+FbkcDCt8h3BCD9t1ufmoKLJq"
    "8k/rR+D4YWUzOMXn9oDDpDw9BX4GkyKnxBKBfwnl9m/UZApFQXFzj73L7+cHj8i0TAPG67"
    "slHi0l+kIeJoZiodEVHGE0ScLOizMXLzQc8NUqxhqOVQDgGVgFSfoEfDwdTmY/jZPGotYP"
    "xX+1piBi3JmUGUzGKnFzQ1Z22Cd8R3ijzvgbmWMUbeeBXOGcP18A4FEfAozN+B+NFSxI8W"
    "ED9KE3cZKOWC7lB/ImF3YUyImjgDPbTdHGs58644ZeijQef6RBOW/9L2+VW3d6Iha0KoXs"
    "AHB8dLuODgWOkB0ZR0APEMeIGQ+xwvnDIAjKhiCo/bpTxwA4ZluSCccTY7Z5/2+5ei54nn"
    "/XCkoDtMMR5dnXaAvUQPSoRLcbc3TAHn7A5T4x7e4GJ4GehdyvOBZ+xS0OEuymLeKGt+sc"
    "UIfm0etD62Ph0etz6BihzlXPJxgU+yaJPrlSTXc2jhZILz4SYtU2StwHQ//GcLp/IFHIfd"
    "q85g2L76M/GAn7eHHdHSlNKnlPRDeoqZd6L93R1+1sRP7Wu/10kvcuZ6w6+6GBPyOTMoez"
    "CQFWcSikNRws3+1Cro5qRl7eZKu9lBHjccZhNawNMZ4zU4O3j11L5ev6/n62dzjKhdKLYV"
    "XdR+r5rfRQ3h9i6W3wrBDTLvHhB4L9ESPSAe9sS6x8tZpQaWF1+usYN4/uIoKK0MZr1s78"
    "QeSYPnMhFFSJY33sio7VuEd+7xUsvJaobGK5TEDRpY3GGNKotKRCNrMlV8ZpsmzUlagiiy"
    "5S2Ja4srpeIvp+oZC0114TM+C5Rc+xT5ujGrU9Zl0IqVQbcwhS6zSrfuLNp3XZjSjBmt1Z"
    "7oPNvNPt/vs/B69WGOLXVdfE+Y7xXim2v8BsDVfCm9kbDLeMH6QNKyrg9ULneoq30/nZtl"
    "JQdWY0UcnbatXV1pV+PHKYHuCjg6abkZN1dk6bF1XobEDfzGsVHc3You6vCutOPJVGhDhz"
    "llF/XRiqRVob3+iq1yk1v6rWVOVbTUhypamTMVsnSB7KAstSznpNXucT46aC4BGrSUpGVb"
    "KtXA95CIFUo1Epb1LkWVJ67QV5A2eHkFJ3VQZS13L7AOl4mrQ3VYHWaiKlZ7XbYwEjNZZ7"
    "2pukH0Sj0ks8mWpJtFe8FcTGz6BT9lDt3lb36Ex5S3E2lm3wPELnqYl/TjDxTcO9wxnh3o"
    "OmsPztrnHf1FvWtZ5g5KbMspZxMluSGl3kdJb4Ft/Bz5nlbvsLz3FLG3YIelrq39FAubO2"
    "C4ynIm1N/B0+2txjJpWEOdhjXSq5hgs3rFhUzSqt7aealLCHUJoSKcSykhWJjnftT1x6Df"
    "y8ccWaRfr8Tk2n+aQ7ztPZCUR1agSLxSQ6Afrtr/pFmfXfZP0zOJ6OA0xR2Wu2zVLDNuU0"
    "/NFUnad4ZmZXL2ahItnLLD9bXe6PJSz8Z/zfQVpvEZTwH1nQoh2CXmWM8rgsxa9hYWQCKd"
    "MksfK1UxlMcWc2fInLOKgf8qe35uPQcV1UUL5YFQ9YpVfRZ0F3LaUr7YFkG1AuFAfQfpHj"
    "SWKRmAlvpr7EamaABX5LlZlzodiJm8KR+oGu1NJAQrfIu0/pfZy//sAn04"
)
