-- { __typename }: the GraphQL stack with no resolver of ours.
local body = post('{"query":"{ __typename }"}')

function request()
  return body
end

function response(status, headers, body)
  if not string.find(body, '"Query"', 1, true) then gql_errors = gql_errors + 1 end
end
