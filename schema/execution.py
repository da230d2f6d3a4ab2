"""The execution context every Keyturn schema runs its operations in.

graphql-core's executor hands each resolver's `info` a pair of helpers bound to the executor
itself (`self.track_async_work`, `self.gather_async_work`), stored on that same executor: a
reference cycle. Everything the executor reaches (the request's context, its Starlette request
and response, the variables, the collected fields: about fifty objects a request) then outlives
the request until the cycle collector finds it, so every request fed the collector, whose runs
then also scanned the requests still in flight. Here the helpers reach the executor through a
weak reference, so a request's objects are freed the moment it is answered.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Sequence
from typing import Any

from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class KeyturnExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        executor = weakref.ref(self)

        # A resolver asks for these only while its operation runs, which holds the executor.
        def track(values: Sequence[Any]) -> None:
            live = executor()
            if live is not None:
                live.track_async_work(values)

        def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
            live = executor()
            if live is None:
                raise RuntimeError("the operation these resolvers belonged to has ended")
            return live.gather_async_work(values)

        self.async_helpers = GraphQLResolveInfoHelpers(gather=gather, track=track)
