-- Authenticated { me { id email } }, cycling over a pool of access tokens (args: file, threads).
local requests = {}
local next_request = 1

function init(args)
  for _, token in ipairs(thread_share(args[1], tonumber(args[2]))) do
    table.insert(requests, post('{"query":"{ me { id email } }"}',
      {Authorization = "Bearer " .. token}))
  end
end

function request()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return r
end

function response(status, headers, body)
  if not string.find(body, '"email"', 1, true) then gql_errors = gql_errors + 1 end
end
