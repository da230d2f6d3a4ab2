-- refresh in BODY mode: every request rotates a live token. Each thread holds a pool of
-- sessions' current refresh tokens; a request takes one out, its response puts the new one
-- back, so no token is ever presented twice (args: file, threads).
local pool = {}
local query = 'mutation ($t: String) { refresh(refreshToken: $t, ' ..
  'refreshTokenDelivery: BODY) { accessToken refreshToken } }'

function init(args)
  pool = thread_share(args[1], tonumber(args[2]))
end

function request()
  local token = table.remove(pool, 1) or "pool-exhausted"
  return post('{"query":"' .. query .. '","variables":{"t":"' .. token .. '"}}')
end

function response(status, headers, body)
  local token = string.match(body, '"refreshToken":"([^"]+)"')
  if token then table.insert(pool, token) else gql_errors = gql_errors + 1 end
end
