-- login in BODY mode, cycling over the benchmark accounts (args: emails file, threads, password).
local requests = {}
local next_request = 1
local query = 'mutation ($e: String!, $p: String!) { login(input: {email: $e, password: $p, ' ..
  'refreshTokenDelivery: BODY}) { accessToken } }'

function init(args)
  for _, email in ipairs(thread_share(args[1], tonumber(args[2]))) do
    table.insert(requests, post('{"query":"' .. query .. '","variables":{"e":"' .. email ..
      '","p":"' .. args[3] .. '"}}'))
  end
end

function request()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return r
end

function response(status, headers, body)
  if not string.find(body, '"accessToken"', 1, true) then gql_errors = gql_errors + 1 end
end
